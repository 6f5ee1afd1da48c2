from gac_deploy.cli import main

raise SystemExit(main())
