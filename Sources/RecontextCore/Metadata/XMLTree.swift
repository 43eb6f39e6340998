internal import XML

// MARK: - XMLTree

/// Metadata XML read with the ``XML`` reader, its refusals turned into ``ContextError`` codes.
///
/// The reader refuses a DOCTYPE (so no entity is ever declared or expanded), invalid UTF-8, NUL
/// bytes, and documents over the caps; this maps each refusal to the code and words that
/// recontextd's metadata errors use.
enum XMLTree {
    /// Why a document was refused.
    struct Failure: Error, Sendable {
        /// The kind of problem.
        var code: ContextError.Code
        /// What is wrong.
        var message: String
    }

    /// Caps applied while reading.
    struct Caps: Hashable {
        /// Largest document in UTF-8 bytes.
        var maxBytes: Int
        /// Deepest nesting (the root is depth 1).
        var maxDepth: Int
        /// Most elements in the document.
        var maxElements: Int
    }

    /// Parses a whole document.
    /// - Parameters:
    ///   - xml: The document.
    ///   - caps: Size, depth and count caps.
    /// - Returns: The root element, or why the document was refused.
    static func parse(_ xml: String, caps: Caps) -> Result<XMLElement, Failure> {
        let limits = XMLLimits(
            maxBytes: caps.maxBytes, maxDepth: min(caps.maxDepth, XMLLimits.libxml2MaximumDepth),
            maxElements: caps.maxElements)
        do {
            return .success(try XMLReader.parse(xml, limits: limits))
        } catch {
            return .failure(failure(error))
        }
    }

    /// The metadata error for a refusal of the reader.
    static func failure(_ error: XMLError) -> Failure {
        switch error.kind {
        case .tooLarge(let bytes, let limit):
            Failure(code: .limitExceeded, message: "metadata is \(bytes) bytes, more than the limit of \(limit)")
        case .tooDeep(let limit):
            Failure(
                code: .limitExceeded, message: "elements are nested deeper than \(limit) levels (line \(error.line))")
        case .tooManyElements(let limit):
            Failure(code: .limitExceeded, message: "metadata has more than \(limit) elements")
        case .doctype:
            Failure(
                code: .forbiddenDTD,
                message: "a DOCTYPE is not allowed (no DTDs, no entity declarations), line \(error.line)")
        case .nulByte:
            Failure(code: .malformedXML, message: "metadata contains a NUL byte (line \(error.line))")
        case .invalidUTF8:
            Failure(code: .malformedXML, message: "metadata is not valid UTF-8 (line \(error.line))")
        case .empty:
            Failure(code: .malformedXML, message: "not well-formed XML: the document is empty")
        case .malformed:
            Failure(
                code: .malformedXML,
                message: "\(error.message) at line \(error.line)\(error.column > 0 ? ", column \(error.column)" : "")")
        }
    }
}
