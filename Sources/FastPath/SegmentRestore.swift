#if canImport(Glibc)
import Glibc
#endif
import CCRC32C
import Codec
import LocalFS

/// Decoding a zstd object into a file with the writes behind the decoding: the one implementation
/// of archive-get's restore of a segment, used by walctl (`ObjectReader.restore`, every repository)
/// and by walctl-fast (`FastFront.getDirect`, a plaintext file repository). Foundation-free, so the
/// fast front can link it.
///
/// The object is decoded into a few small buffers that a second thread (`WriteBehind`) CRC-32Cs and
/// writes out in order, as `zstd -d` 1.5's output thread does: the wall time of decoding plus
/// writing becomes about the longer of the two. The caller compares the returned CRC-32C and size
/// with the meta before it commits the file.
public enum SegmentRestore {
    /// More bytes decoded than the meta's size: the writing stopped there.
    public struct TooLong: Error, Equatable { public let decoded: Int64 }
    /// zstd took neither input nor output: a corrupt stream (`CodecError` is thrown for the rest).
    public struct NoProgress: Error, Equatable {}

    /// Decodes the zstd stream that `read` hands over (in chunks, to the closure it is given) into
    /// `out`, and returns the CRC-32C and size of what was written; throws `read`'s errors,
    /// `CodecError`, `LocalFSError` (a write), `TooLong` or `NoProgress`, and then `out` holds
    /// nothing the caller may commit. nil when the write thread cannot be started (nothing was read:
    /// the caller decodes the plain way).
    public static func zstd(expectedSize: Int64, into out: AtomicWriter, decoder: BufferDecoder,
                            read: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> (crc: UInt32, size: Int)? {
        guard let behind = try? WriteBehind(out: out) else { return nil }
        do {
            var buffer = try behind.take()
            var filled = 0
            var decoded: Int64 = 0
            // Decodes `input` into the buffers, handing each full one to the thread; also called with
            // no input at the end, for what zstd still holds.
            func decode(_ input: UnsafeRawBufferPointer) throws {
                var consumed = 0
                while true {
                    let before = (consumed, filled)
                    try decoder.decode(input, consumed: &consumed, into: buffer, filled: &filled)
                    if filled == buffer.count {   // full: hand it over, and call again (zstd may hold more)
                        decoded += Int64(filled)
                        if decoded > expectedSize { throw TooLong(decoded: decoded) }   // stop writing now
                        try behind.submit(buffer, count: filled)
                        buffer = try behind.take()
                        filled = 0
                        continue
                    }
                    if consumed >= input.count { break }
                    if before == (consumed, filled) { throw NoProgress() }
                }
            }
            try read { stored in try decode(stored) }
            try decode(UnsafeRawBufferPointer(start: nil, count: 0))
            try decoder.finish()
            try behind.submit(buffer, count: filled)
            return try behind.finish()
        } catch {
            behind.cancel()
            throw error
        }
    }

    /// Reads the regular file `fd` to its end in 1 MiB chunks, handing each to `sink`.
    public static func readAll(_ fd: Int32, path: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let chunk = 1 << 20
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = Glibc.read(fd, buf.baseAddress, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw LocalFSError.io(operation: "read", path: path, errno: errno)
            }
            if n == 0 { return }
            try sink(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
    }
}

/// Writes buffers out on a thread of its own while the caller fills the next ones, CRC-32Cing each
/// in the order submitted. A few small buffers reused round robin, not one the size of the file: on
/// this kind of machine a fresh page costs microseconds to fault in, so a segment-sized buffer per
/// process costs more than it saves (docs/benchmarks.md). A plain pthread, not Foundation's Thread
/// or Dispatch: nothing to start up in a process that lives for one segment.
final class WriteBehind: @unchecked Sendable {
    static let bufferSize = 256 << 10
    static let bufferCount = 4
    struct CannotStart: Error { let errno: Int32 }
    private let out: AtomicWriter
    private let memory: UnsafeMutableRawBufferPointer
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    // Guarded by `mutex`:
    private var free: [UnsafeMutableRawBufferPointer]
    private var queue: [(UnsafeMutableRawBufferPointer, Int)] = []
    private var ended = false
    private var stopped = false
    private var failure: Error?
    // The thread's own until it has been joined:
    private var crc: UInt32 = 0xFFFF_FFFF
    private var written = 0
    private var thread = pthread_t()
    private var running = false

    /// Starts the thread; throws when it cannot.
    init(out: AtomicWriter) throws {
        self.out = out
        let m = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize * Self.bufferCount, alignment: 4096)
        memory = m
        free = (0..<Self.bufferCount).map { i in
            UnsafeMutableRawBufferPointer(rebasing: m[(i * Self.bufferSize)..<((i + 1) * Self.bufferSize)])
        }
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        let me = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let w = Unmanaged<WriteBehind>.fromOpaque(arg!).takeRetainedValue()
            w.run()
            return nil
        }, me)
        guard rc == 0 else {
            Unmanaged<WriteBehind>.fromOpaque(me).release()
            throw CannotStart(errno: rc)
        }
        running = true
    }

    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
        memory.deallocate()
    }

    private func run() {
        while true {
            pthread_mutex_lock(&mutex)
            while queue.isEmpty && !ended && !stopped { pthread_cond_wait(&cond, &mutex) }
            if stopped || queue.isEmpty { pthread_mutex_unlock(&mutex); return }   // cancelled, or the end
            let (buffer, count) = queue.removeFirst()
            pthread_mutex_unlock(&mutex)
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            if let base = bytes.baseAddress, count > 0 { crc = walctl_crc32c_update(crc, base, count) }
            var error: Error?
            do { try out.write(bytes) } catch let e { error = e }
            written += count
            pthread_mutex_lock(&mutex)
            free.append(buffer)
            if let error { failure = error; stopped = true }
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
            if error != nil { return }
        }
    }

    /// A buffer to fill (waits for the thread to give one back); throws the thread's write error.
    func take() throws -> UnsafeMutableRawBufferPointer {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while free.isEmpty && failure == nil { pthread_cond_wait(&cond, &mutex) }
        if let failure { throw failure }
        return free.removeLast()
    }

    /// Queues the first `count` bytes of `buffer` (from `take`) to be written.
    func submit(_ buffer: UnsafeMutableRawBufferPointer, count: Int) throws {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if let failure { throw failure }
        if count > 0 { queue.append((buffer, count)) } else { free.append(buffer) }
        pthread_cond_broadcast(&cond)
    }

    /// Writes what is queued, joins the thread, and returns the CRC-32C and the size of everything
    /// written; throws the first write error.
    func finish() throws -> (crc: UInt32, size: Int) {
        pthread_mutex_lock(&mutex)
        ended = true
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        join()
        if let failure { throw failure }
        return (crc ^ 0xFFFF_FFFF, written)
    }

    /// Stops the thread without writing what is queued (the file is being thrown away) and joins it.
    func cancel() {
        pthread_mutex_lock(&mutex)
        stopped = true
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        join()
    }

    private func join() {
        guard running else { return }
        pthread_join(thread, nil)
        running = false
    }
}
