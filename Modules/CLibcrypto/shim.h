// OpenSSL's libcrypto (3.0 on Debian 12), imported into Swift for the Digest target only. libvirt
// already loads it into recontextd (through libssh), so hashing with it costs no library of its own.
#ifndef RECONTEXTD_CLIBCRYPTO_SHIM_H
#define RECONTEXTD_CLIBCRYPTO_SHIM_H

// EVP_MD_CTX_new/free, EVP_DigestInit_ex/Update/Final_ex and EVP_sha256: the digest interface
// OpenSSL 3 keeps (the SHA256_Init family is deprecated).
#include <openssl/evp.h>

#endif
