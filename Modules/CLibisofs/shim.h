// libisofs, imported into Swift.
#ifndef RECONTEXTD_CLIBISOFS_SHIM_H
#define RECONTEXTD_CLIBISOFS_SHIM_H

// libisofs.h uses uint32_t and friends without including <stdint.h> itself.
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
// Without this libisofs.h references `struct burn_source` from libburn, which we do not use.
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>

#endif
