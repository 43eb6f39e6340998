// libsystemd (journal and sd_notify), imported into Swift.
#ifndef RECONTEXTD_CSYSTEMD_SHIM_H
#define RECONTEXTD_CSYSTEMD_SHIM_H

// sd-journal.h also defines sd_journal_sendv() as a function-like macro that adds CODE_FILE and
// CODE_LINE of the caller, which for Swift would always be this header. Without the macro the
// plain function is imported, and JournalLogHandler passes the Swift caller's CODE_* fields.
#define SD_JOURNAL_SUPPRESS_LOCATION 1

#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-daemon.h>

// No csystemd_ helpers are needed: the calls the daemon makes (sd_journal_sendv, sd_notify,
// sd_watchdog_enabled) are not variadic and import as they are. sd_journal_send, sd_journal_print
// and sd_notifyf are variadic and are not used.

#endif
