from voiceagent.cli import main

raise SystemExit(main())
