from virtops.cli import main

main()
