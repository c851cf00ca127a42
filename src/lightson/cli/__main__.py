from lightson.cli import main

main()
