import CCrypto
import CLazyLoad
import Foundation
import HTTP

/// A streaming upload to S3.
///
/// Bytes are buffered up to `S3Settings.partSize`. An object that fits is sent by `commit()` as one
/// PUT. A larger one becomes a multipart upload: each full buffer is a part, hashed and sent by a
/// worker thread with its own connection while the caller fills the next buffer; at most
/// `uploadThreads` parts are in flight (memory: `(uploadThreads + 1) * partSize`). `commit()` sends the
/// last part, waits for all of them and completes the upload; on any failure, and on `abort()`, the
/// multipart upload is aborted on the server so no parts are left behind.
///
/// `PutOptions.ifAbsent` sends `If-None-Match: *` on the PUT or on CompleteMultipartUpload; a 412
/// answer becomes `.alreadyExists`. Note: when a first attempt stored the object but its answer was
/// lost (reset, timeout), the retry gets 412 too, so `.alreadyExists` after a retried put may mean
/// "stored by this very call": callers compare contents (archive-push already does for re-pushes).
final class S3ObjectWriter: ObjectWriter {
    let store: S3Store
    let key: String
    let fullKey: String
    let options: PutOptions
    let partSize: Int

    private var buffer: UnsafeMutableRawBufferPointer?
    private var filled = 0
    private var uploadID: String?
    private var nextPart = 1
    private var finished = false

    // Shared with the part workers.
    private let lock = NSLock()
    private var etags: [Int: String] = [:]
    private var failure: StoreError?
    private var spare: [UnsafeMutableRawBufferPointer] = []
    private let group = DispatchGroup()
    private let slots: DispatchSemaphore

    init(store: S3Store, key: String, options: PutOptions) {
        self.store = store
        self.key = key
        self.fullKey = store.objectKey(key)
        self.options = options
        self.partSize = store.settings.partSize
        self.slots = DispatchSemaphore(value: store.settings.uploadThreads)
    }

    deinit {
        if !finished { abort() }
        buffer?.deallocate()
        for b in spare { b.deallocate() }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(StoreError) {
        guard !finished else { throw .configuration("write to a finished upload of \(fullKey)") }
        if let f = currentFailure() { throw f }
        var offset = 0
        while offset < bytes.count {
            let buf = buffer ?? takeBuffer()
            buffer = buf
            let n = min(bytes.count - offset, partSize - filled)
            (buf.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            filled += n
            offset += n
            if filled == partSize && offset < bytes.count {
                // Only send a full part once more bytes are known to follow, so an object of exactly
                // one part size stays a single PUT.
                try sendPart()
            } else if filled == partSize {
                // Defer: commit() or the next write decides.
            }
        }
    }

    func commit() throws(StoreError) {
        guard !finished else { throw .configuration("commit of a finished upload of \(fullKey)") }
        do throws(StoreError) {
            if uploadID == nil {
                try putWhole()
            } else {
                if filled > 0 { try sendPart() }
                group.wait()
                if let f = currentFailure() { throw f }
                try complete()
            }
            finished = true
            release()
        } catch {
            abort()
            throw error
        }
    }

    func abort() {
        if finished && uploadID == nil { return }
        finished = true
        group.wait()
        if let id = uploadID {
            uploadID = nil
            _ = try? store.send(S3Store.Call(method: "DELETE", key: fullKey, query: [("uploadId", id)]), displayKey: fullKey)
        }
        release()
    }

    // MARK: Internals

    private func currentFailure() -> StoreError? {
        lock.lock(); defer { lock.unlock() }
        return failure
    }

    private func takeBuffer() -> UnsafeMutableRawBufferPointer {
        lock.lock()
        let b = spare.popLast()
        lock.unlock()
        return b ?? UnsafeMutableRawBufferPointer.allocate(byteCount: partSize, alignment: 64)
    }

    private func release() {
        lock.lock(); defer { lock.unlock() }
        buffer?.deallocate()
        buffer = nil
        filled = 0
        for b in spare { b.deallocate() }
        spare = []
    }

    /// The retain-until date of this object under Object Lock, fixed when the upload starts.
    private lazy var retainUntil: String? = store.settings.objectLockDays.map { Self.retainUntil(days: $0) }

    private var objectHeaders: [(String, String)] {
        var h: [(String, String)] = []
        if let sse = store.settings.sse { h.append(("x-amz-server-side-encryption", sse)) }
        if let sc = store.settings.storageClass { h.append(("x-amz-storage-class", sc)) }
        if let mode = store.settings.objectLockMode, let until = retainUntil {
            // Retained until `s3-object-lock-days` from now (docs/operator-guide.md, "Immutable archives").
            h.append(("x-amz-object-lock-mode", mode))
            h.append(("x-amz-object-lock-retain-until-date", until))
        }
        return h
    }

    /// ISO 8601 UTC, whole seconds: `2026-12-30T16:00:00Z`.
    static func retainUntil(days: Int, from now: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: now.addingTimeInterval(Double(days) * 86_400))
    }

    /// `content-md5` for a body when Object Lock needs it (S3 refuses locked PUTs and parts without
    /// an integrity header).
    static func md5Header(_ body: UnsafeRawBufferPointer, settings: S3Settings) -> [(String, String)] {
        guard settings.objectLockMode != nil else { return [] }
        var out = [UInt8](repeating: 0, count: 16)
        guard out.withUnsafeMutableBytes({ walctl_md5(body.baseAddress, body.count, $0.baseAddress?.assumingMemoryBound(to: UInt8.self)) }) == 1 else { return [] }
        return [("content-md5", Data(out).base64EncodedString())]
    }

    private func putWhole() throws(StoreError) {
        var headers = objectHeaders
        if options.ifAbsent { headers.append(("if-none-match", "*")) }
        let body = UnsafeRawBufferPointer(start: buffer?.baseAddress, count: filled)
        headers += Self.md5Header(body, settings: store.settings)
        let r = try store.send(S3Store.Call(method: "PUT", key: fullKey, headers: headers, body: body), displayKey: fullKey)
        if r.status == 412 && options.ifAbsent { throw .alreadyExists(key: key) }
        guard (200..<300).contains(r.status) else { throw store.httpError(r, key: fullKey) }
    }

    private func create() throws(StoreError) {
        let r = try store.send(S3Store.Call(method: "POST", key: fullKey, query: [("uploads", "")], headers: objectHeaders),
                               displayKey: fullKey)
        guard r.status == 200, let id = S3XML.value(String(decoding: r.body, as: UTF8.self), "UploadId"), !id.isEmpty else {
            throw store.httpError(r, key: fullKey)
        }
        uploadID = id
    }

    /// Hands the current buffer to a worker as the next part.
    private func sendPart() throws(StoreError) {
        if uploadID == nil { try create() }
        guard let id = uploadID, let buf = buffer else { return }
        let number = nextPart
        let count = filled
        nextPart += 1
        buffer = nil
        filled = 0
        guard number <= 10_000 else {
            throw .configuration("object \(fullKey) needs more than 10000 parts: raise s3-part-size")
        }
        slots.wait()
        if let f = currentFailure() {
            slots.signal()
            lock.lock(); spare.append(buf); lock.unlock()
            throw f
        }
        group.enter()
        let store = self.store
        let fullKey = self.fullKey
        let part = PartBuffer(bytes: buf)
        DispatchQueue.global().async { [self] in
            defer { slots.signal(); group.leave() }
            let buf = part.bytes
            let body = UnsafeRawBufferPointer(start: buf.baseAddress, count: count)
            let call = S3Store.Call(method: "PUT", key: fullKey, query: [("partNumber", String(number)), ("uploadId", id)],
                                    headers: S3ObjectWriter.md5Header(body, settings: store.settings), body: body)
            var outcome: StoreError?
            var etag: String?
            do throws(StoreError) {
                let r = try store.send(call, displayKey: fullKey)
                if (200..<300).contains(r.status), let e = r.header("ETag") { etag = e } else { outcome = store.httpError(r, key: fullKey) }
            } catch {
                outcome = error
            }
            lock.lock()
            if let etag { etags[number] = etag }
            if let outcome, failure == nil { failure = outcome }
            spare.append(buf)
            lock.unlock()
        }
    }

    private func complete() throws(StoreError) {
        guard let id = uploadID else { return }
        lock.lock()
        let parts = etags.sorted { $0.key < $1.key }
        lock.unlock()
        guard parts.count == nextPart - 1 else {
            throw .transport(message: "multipart upload lost a part answer", key: fullKey)
        }
        var xml = "<CompleteMultipartUpload>"
        for (n, e) in parts { xml += "<Part><PartNumber>\(n)</PartNumber><ETag>\(S3XML.escape(e))</ETag></Part>" }
        xml += "</CompleteMultipartUpload>"
        var headers: [(String, String)] = [("content-type", "application/xml")]
        if options.ifAbsent { headers.append(("if-none-match", "*")) }
        let bytes = Array(xml.utf8)
        let result: Result<HTTP.HTTPResponse, StoreError> = bytes.withUnsafeBytes { body in
            do throws(StoreError) {
                return .success(try store.send(S3Store.Call(method: "POST", key: fullKey, query: [("uploadId", id)],
                                                            headers: headers, body: body), displayKey: fullKey))
            } catch { return .failure(error) }
        }
        let r = try result.get()
        if r.status == 412 && options.ifAbsent { throw .alreadyExists(key: key) }
        guard r.status == 200 else { throw store.httpError(r, key: fullKey) }
        uploadID = nil
        try confirmRetention()
    }

    /// Under Object Lock, a completed multipart object's retention is set again explicitly
    /// (PutObjectRetention, the same mode and date): the headers of CreateMultipartUpload are not
    /// honoured by every S3-compatible store, and an object must never be left unretained.
    private func confirmRetention() throws(StoreError) {
        guard let mode = store.settings.objectLockMode, let until = retainUntil else { return }
        let xml = Array("<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>\(mode)</Mode><RetainUntilDate>\(until)</RetainUntilDate></Retention>".utf8)
        let result: Result<HTTP.HTTPResponse, StoreError> = xml.withUnsafeBytes { body in
            do throws(StoreError) {
                return .success(try store.send(S3Store.Call(method: "PUT", key: fullKey, query: [("retention", "")],
                                                            headers: [("content-type", "application/xml")] + Self.md5Header(body, settings: store.settings),
                                                            body: body), displayKey: fullKey))
            } catch { return .failure(error) }
        }
        let r = try result.get()
        guard (200..<300).contains(r.status) else { throw store.httpError(r, key: fullKey) }
    }
}

/// A part's buffer handed to one worker thread; the writer does not touch it until the worker is done.
private struct PartBuffer: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
}
