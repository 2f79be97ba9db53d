from neuroexec.cli import main

raise SystemExit(main())
