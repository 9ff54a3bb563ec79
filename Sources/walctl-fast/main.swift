// walctl-fast: the same front as `walctl` (FastPath.FrontMain), under the name restore_commands and
// archive_commands written before the front became `walctl` use, and that `walctl recover` still
// writes (docs/async.md, "The fast front").
import FastPath

FrontMain.run(CommandLine.arguments)
