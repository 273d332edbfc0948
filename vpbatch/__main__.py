from vpbatch.cli import main

main()
