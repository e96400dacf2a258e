from mmbind.cli import main

main()
