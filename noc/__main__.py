from noc.cli import main

raise SystemExit(main())
