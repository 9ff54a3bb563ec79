// walctl: the command operators and PostgreSQL run. A start-up-cheap front (Glibc and FastPath
// only, statically linked): it answers archive-push / archive-get from the spools or a plaintext
// file repository itself when it can, and execs the full binary `walctl-core` beside it for
// everything else (FastPath.FrontMain; docs/architecture.md, "Two executables").
import FastPath

FrontMain.run(CommandLine.arguments)
