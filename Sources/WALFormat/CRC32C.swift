import CCRC32C

/// CRC-32C (Castagnoli), the checksum PostgreSQL puts on every WAL record, and the checksum walctl
/// keeps with every archived object. Uses SSE4.2 where the CPU has it.
public struct CRC32C: Sendable {
    public private(set) var state: UInt32 = 0xFFFF_FFFF
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        state = walctl_crc32c_update(state, base, bytes.count)
    }
    public var value: UInt32 { state ^ 0xFFFF_FFFF }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32C(); c.update(bytes); return c.value
    }
    /// Whether the hardware path is in use on this CPU.
    public static var isHardwareAccelerated: Bool { walctl_crc32c_hardware() != 0 }
}
