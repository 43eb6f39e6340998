// MARK: - MetricsListenAddress

/// `metrics.listen`: where the daemon answers `GET /metrics`.
///
/// Only a unix socket or a loopback TCP address: the metrics are for a local scraper (or a
/// node_exporter-style proxy), and recontextd opens no network listener reachable from outside.
///
/// | written | meaning |
/// |---|---|
/// | `unix:/run/recontextd/metrics.sock` | a unix stream socket at that absolute path |
/// | `127.0.0.1:9466` (any `127.x.y.z`) | TCP on an IPv4 loopback address |
/// | `[::1]:9466` | TCP on the IPv6 loopback address |
/// | `localhost:9466` | the same as `127.0.0.1:9466` |
public enum MetricsListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// A unix stream socket at an absolute path.
    case unix(path: String)
    /// TCP on a loopback address (`127.0.0.0/8` or `::1`), written as a numeric literal.
    case tcp(host: String, port: UInt16)

    /// Parses the configuration value.
    /// - Parameter text: e.g. `unix:/run/recontextd/metrics.sock` or `127.0.0.1:9466`.
    /// - Returns: the address, or a message saying what is wrong.
    public static func parse(_ text: String) -> Result<MetricsListenAddress, ParseError> {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard path.hasPrefix("/"), !path.contains("\0") else {
                return .failure(
                    ParseError("a unix socket needs an absolute path, like \"unix:/run/recontextd/metrics.sock\""))
            }
            // sun_path holds 108 bytes with the terminating NUL.
            guard path.utf8.count <= 107 else {
                return .failure(ParseError("the unix socket path is \(path.utf8.count) bytes, more than 107"))
            }
            return .success(.unix(path: path))
        }
        let host: String
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(ParseError("expected \"[::1]:PORT\""))
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(
                    ParseError("expected \"unix:/PATH\", \"127.0.0.1:PORT\" or \"[::1]:PORT\""))
            }
            host = String(text[..<colon])
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText), port > 0 else {
            return .failure(ParseError("expected a port from 1 to 65535, got \"\(portText)\""))
        }
        if host == "localhost" { return .success(.tcp(host: "127.0.0.1", port: port)) }
        if host == "::1" { return .success(.tcp(host: host, port: port)) }
        guard isIPv4Literal(host) else {
            return .failure(
                ParseError(
                    "only a loopback address is allowed (127.0.0.0/8, [::1] or localhost), got \"\(host)\"; "
                        + "metrics are never served to the network"))
        }
        guard host.hasPrefix("127.") else {
            return .failure(
                ParseError("\(host) is not a loopback address; only 127.0.0.0/8, [::1] or localhost is allowed"))
        }
        return .success(.tcp(host: host, port: port))
    }

    /// Why a `metrics.listen` value was refused.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The message.
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Whether `text` is a dotted-quad IPv4 literal.
    static func isIPv4Literal(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber)
                && Int(part).map { $0 <= 255 } == true
        }
    }

    /// Whether this address needs internet sockets (`AF_INET`/`AF_INET6`), which the shipped
    /// systemd unit does not allow without a drop-in.
    public var needsInternetSockets: Bool {
        if case .tcp = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}
