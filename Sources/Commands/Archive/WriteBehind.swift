import Foundation
import WALFormat

/// Writes buffers out on a thread of its own while the caller fills the next ones (archive-get: zstd
/// decoding straight into them, `BufferDecoder`), so decoding and the copy into the page cache
/// overlap on two cores as `zstd -d`'s own output thread does. The thread CRC-32Cs each buffer and
/// writes it in the order submitted. A few small buffers reused round robin, not one the size of the
/// file: on this kind of machine a fresh page costs microseconds to fault in, so a segment-sized
/// buffer per process costs more than it saves (docs/benchmarks.md). A plain pthread, not
/// Foundation's Thread or Dispatch: nothing to start up in a process that lives for one segment.
final class WriteBehind: @unchecked Sendable {
    static let bufferSize = 256 << 10
    static let bufferCount = 4
    private let out: AtomicFile
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
    private var crc = CRC32C()
    private var written = 0
    private var thread = pthread_t()
    private var running = false

    /// Starts the thread; throws when it cannot (the caller then writes the usual way).
    init(out: AtomicFile) throws {
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
            throw WalctlError.file(operation: "start the write thread for", path: out.path, errno: rc)
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
            crc.update(bytes)
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
        return (crc.value, written)
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
