// libyaml (0.2.5 on Debian 12), imported into Swift for the YAML target only.
#ifndef RECONTEXTD_CLIBYAML_SHIM_H
#define RECONTEXTD_CLIBYAML_SHIM_H

// The event-based parser (yaml_parser_*) and emitter (yaml_emitter_*), their event structure
// (yaml_event_t) and the *_event_initialize functions. The document API (yaml_document_*,
// yaml_parser_load) is not used: the YAML target composes its own tree from the events, so
// that it can bound depth and alias expansion while it reads.
#include <yaml.h>

// No recontextd_yaml_ helpers are needed: every call the YAML target makes is a plain function
// and the output handler is a Swift @convention(c) function. Add a helper here (prefixed
// recontextd_yaml_, with a comment saying why) only for what Swift cannot import: a
// function-like macro or a variadic function.

#endif
