import sys

if sys.argv[1:2] == ["serve"]:
    from server.allocator import reexec_on_system_malloc

    reexec_on_system_malloc()  # before the server's imports (server/allocator.py says why)

from server.cli import main

sys.exit(main())
