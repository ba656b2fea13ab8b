from racl.cli import main

raise SystemExit(main())
