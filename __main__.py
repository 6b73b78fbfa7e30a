from edgernn.cli import main

raise SystemExit(main())
