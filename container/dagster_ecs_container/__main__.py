from .entrypoint import main

raise SystemExit(main())
