/// Failures talking to a PostgreSQL server, each carrying the server's (or libpq's) own message so an
/// operator sees exactly what PostgreSQL said.
public enum PGError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The connection could not be made (bad conninfo, server down, authentication refused, ...).
    /// `target` is a password-free description of where it tried to connect.
    case connectionFailed(target: String, message: String)
    /// The server answered a command with an error. `sqlState` is the five-character SQLSTATE code
    /// when the server sent one (`42501` insufficient privilege, `57014` canceled, ...).
    case commandFailed(command: String, sqlState: String?, message: String)
    /// The server's answer did not have the shape this client expects (a different protocol version,
    /// a proxy in the way, a bug): never retried.
    case protocolViolation(String)
    /// The server is too old or lacks a feature asked for.
    case unsupported(String)
    /// The connection broke during a command or a COPY stream.
    case connectionLost(String)

    public var description: String {
        switch self {
        case .connectionFailed(let t, let m):
            return "cannot connect to PostgreSQL (\(t)): \(m.trimmedMessage)"
        case .commandFailed(let c, let s, let m):
            return "PostgreSQL refused \(c)\(s.map { " [SQLSTATE \($0)]" } ?? ""): \(m.trimmedMessage)"
        case .protocolViolation(let m): return "unexpected answer from PostgreSQL: \(m)"
        case .unsupported(let m): return m
        case .connectionLost(let m): return "connection to PostgreSQL lost: \(m.trimmedMessage)"
        }
    }
}

extension String {
    /// libpq messages end with a newline and often start with `ERROR:  `.
    var trimmedMessage: String {
        var s = Substring(self)
        while let l = s.last, l == "\n" || l == " " { s = s.dropLast() }
        for p in ["ERROR:  ", "FATAL:  "] where s.hasPrefix(p) { s = s.dropFirst(p.count) }
        return String(s)
    }
}
