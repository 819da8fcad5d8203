from telline.cli import main

main()
