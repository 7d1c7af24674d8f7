from cde_otel.cli import main

main()
