from ccgate.cli.main import main

raise SystemExit(main())
