from voxwarden.cli import main

main()
