from loopsync.cli import main

main()
