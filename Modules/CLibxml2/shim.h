// libxml2 (2.9.14 on Debian 12), imported into Swift for the XML target only.
#ifndef RECONTEXTD_CLIBXML2_SHIM_H
#define RECONTEXTD_CLIBXML2_SHIM_H

// Debian builds libxml2 with ICU, so encoding.h includes the system's <unicode/ucnv.h>, whose
// types clash with the ICU copy inside Foundation ("'UErrorCode' has different definitions in
// different modules") in every module that imports both. Without the macro encoding.h leaves ICU
// out; that only drops the two ICU converter pointers at the end of xmlCharEncodingHandler, a
// structure the XML target never touches (it sees only pointers to it, and no conversion happens:
// the input is UTF-8 and encoding declarations are ignored).
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED

// The SAX2 interface the XML target uses: xmlParseDocument, xmlStopParser, xmlByteConsumed and
// the xmlSAXHandler/xmlParserCtxt structures.
#include <libxml/parser.h>
// xmlCreateMemoryParserCtxt: a parser context over a memory buffer whose SAX handler can be
// replaced before parsing (2.9.14 has no xmlNewSAXParserCtxt).
#include <libxml/parserInternals.h>
// xmlError and its codes (XML_ERR_*), which the structured error callback receives.
#include <libxml/xmlerror.h>

// No recontextd_xml_ helpers are needed: every call the XML target makes is a plain function,
// XML_SAX2_MAGIC and the XML_PARSE_* options import as constants, and the SAX callbacks are Swift
// @convention(c) functions. Add a helper here (prefixed recontextd_xml_, with a comment saying
// why) only for what Swift cannot import: a function-like macro or a variadic function.

#endif
