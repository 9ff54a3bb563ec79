#include <sqlite3.h>

/* sqlite3_db_config is variadic, which Swift cannot call: the one option walctl sets.
   SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE: closing the last connection leaves the -wal file for the next
   process instead of checkpointing it (two fdatasyncs) and deleting it (the next process would create
   it again: a header sync and a directory sync). Every archive-push is such a last connection. */
static inline int walctl_sqlite3_no_checkpoint_on_close(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
}
