from febm.cli import main

raise SystemExit(main())
