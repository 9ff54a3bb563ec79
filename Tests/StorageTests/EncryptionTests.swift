import Foundation
import Testing
@testable import Storage

/// The encrypted object format (ChunkFormat): round trips, and every tamper refused.
@Suite struct ChunkFormatTests {
    let key: [UInt8] = (0..<32).map { UInt8($0) }
    let name = "wal/0000000100000000/000000010000000000000003.1c2b3a4d.zst"
    static let chunk = 4096   // small chunks: many boundaries in little data

    func seal(_ p: [UInt8], name: String? = nil, kind: String = "wal") throws -> [UInt8] {
        try ObjectSealer.seal(p, dataKey: key, kind: kind, name: name ?? self.name, chunkSize: Self.chunk)
    }
    func open(_ c: [UInt8], name: String? = nil, kind: String = "wal", key: [UInt8]? = nil) throws -> [UInt8] {
        try ObjectOpener.open(c, dataKey: key ?? self.key, kind: kind, name: name ?? self.name)
    }
    func payload(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

    /// True when `open` refuses with `tampered`.
    func refused(_ c: [UInt8], name: String? = nil, kind: String = "wal", key: [UInt8]? = nil) -> Bool {
        do { _ = try open(c, name: name, kind: kind, key: key); return false } catch let e as CipherError {
            if case .tampered = e { return true }; return false
        } catch { return false }
    }

    @Test(arguments: [0, 1, 4095, 4096, 4097, 8192, 3 * 4096 + 17])
    func roundTrip(size: Int) throws {
        let p = payload(size)
        let c = try seal(p)
        #expect(Array(c.prefix(8)) == ChunkFormat.magic)
        #expect(Int64(c.count) == ChunkFormat.encryptedSize(plaintext: Int64(size), chunkSize: Self.chunk))
        #expect(try open(c) == p)
        // Same plaintext, fresh salt and nonce prefix: different bytes.
        #expect(try seal(p) != c)
    }

    @Test func streamingInOddPieces() throws {
        let p = payload(5 * 4096 + 123)
        let s = try ObjectSealer(dataKey: key, kind: "wal", name: name, chunkSize: Self.chunk)
        var c: [UInt8] = []
        var i = 0
        for step in [1, 4095, 4096, 7, 10000, 3] where i < p.count {
            let end = min(p.count, i + step)
            try p[i..<end].withUnsafeBytes { try s.update($0) { c.append(contentsOf: $0) } }
            i = end
        }
        try p[i...].withUnsafeBytes { try s.update($0) { c.append(contentsOf: $0) } }
        try s.finish { c.append(contentsOf: $0) }
        // Decrypt fed one byte at a time, then in large pieces.
        let o = ObjectOpener(dataKey: key, kind: "wal", name: name)
        var out: [UInt8] = []
        for b in c { try [b].withUnsafeBytes { try o.update($0) { out.append(contentsOf: $0) } } }
        try o.finish { out.append(contentsOf: $0) }
        #expect(out == p)
    }

    /// A bit flipped anywhere (every header byte, the first/middle/last byte of each chunk's
    /// ciphertext, each tag byte) is refused.
    @Test func everyBitFlipRefused() throws {
        let size = 2 * 4096 + 100
        let c = try seal(payload(size))
        var positions = Array(0..<ChunkFormat.headerSize)
        var start = ChunkFormat.headerSize
        for chunkLen in [4096, 4096, 100] {
            positions += [start, start + chunkLen / 2, start + chunkLen - 1]            // ciphertext
            positions += (0..<16).map { start + chunkLen + $0 }                          // tag
            start += chunkLen + 16
        }
        #expect(start == c.count)
        for pos in positions {
            for bit in [0, 7] {
                var t = c
                t[pos] ^= UInt8(1 << bit)
                let r = refused(t)
                #expect(r, "flip at byte \(pos) bit \(bit) was accepted")
            }
        }
    }

    /// Cut at every chunk boundary and in the middle of each chunk, header and tag: refused.
    @Test func everyTruncationRefused() throws {
        let c = try seal(payload(3 * 4096))   // three full chunks, the last one final
        let unit = 4096 + 16
        var cuts = [0, 1, 8, ChunkFormat.headerSize - 1, ChunkFormat.headerSize]
        for i in 0..<3 {
            let s = ChunkFormat.headerSize + i * unit
            cuts += [s + 1, s + 2048, s + 4096, s + 4096 + 8, s + unit - 1]
            if i > 0 { cuts.append(s) }    // a boundary: the object ends after a non-final chunk
        }
        for cut in cuts where cut < c.count {
            let r = refused(Array(c.prefix(cut)))
            #expect(r, "truncation to \(cut) of \(c.count) bytes was accepted")
        }
        // Bytes appended after the final chunk: refused too.
        #expect(refused(c + [0]))
        #expect(refused(c + Array(c.suffix(unit))))
    }

    @Test func swappedOrDroppedChunksRefused() throws {
        let c = try seal(payload(3 * 4096 + 50))
        let h = ChunkFormat.headerSize, unit = 4096 + 16
        let chunks = [Array(c[h..<(h + unit)]), Array(c[(h + unit)..<(h + 2 * unit)]), Array(c[(h + 2 * unit)..<(h + 3 * unit)]), Array(c[(h + 3 * unit)...])]
        let header = Array(c.prefix(h))
        #expect(try open(header + chunks.joined()) == payload(3 * 4096 + 50))
        #expect(refused(header + chunks[1] + chunks[0] + chunks[2] + chunks[3]))   // swap two chunks
        #expect(refused(header + chunks[0] + chunks[2] + chunks[1] + chunks[3]))
        #expect(refused(header + chunks[0] + chunks[2] + chunks[3]))               // drop one
        #expect(refused(header + chunks[0] + chunks[1] + chunks[1] + chunks[2] + chunks[3]))  // duplicate one
        // A chunk from another object with the same name and key: refused (other salt / nonce prefix).
        let other = try seal(payload(3 * 4096 + 50))
        var mixed = c
        mixed.replaceSubrange((h + unit)..<(h + 2 * unit), with: other[(h + unit)..<(h + 2 * unit)])
        #expect(refused(mixed))
        // Another object's header in front of these chunks: refused.
        #expect(refused(Array(other.prefix(h)) + chunks.joined()))
    }

    @Test func objectsSwappedBetweenNamesRefused() throws {
        let a = try seal(payload(100), name: "wal/0000000100000000/000000010000000000000003.1c2b3a4d.zst")
        let b = try seal(payload(100), name: "wal/0000000100000000/000000010000000000000004.00000001.zst")
        #expect(refused(a, name: "wal/0000000100000000/000000010000000000000004.00000001.zst"))
        #expect(refused(b, name: "wal/0000000100000000/000000010000000000000003.1c2b3a4d.zst"))
        // The same name but another kind (a data object served as a meta): refused.
        #expect(refused(a, name: "wal/0000000100000000/000000010000000000000003.1c2b3a4d.zst", kind: "meta"))
    }

    @Test func wrongKeyAndPlaintextRefused() throws {
        let c = try seal(payload(5000))
        var other = key; other[0] ^= 1
        #expect(refused(c, key: other))
        #expect(refused([0x28, 0xB5, 0x2F, 0xFD] + payload(100)))   // a zstd frame stored in plaintext
        #expect(refused(Array("{\"name\":\"x\"}".utf8), kind: "meta"))
        #expect(refused([]))
    }
}

@Suite struct RepositoryKeyTests {
    let pass = Array("correct horse battery staple".utf8)

    @Test func createUnlockRotate() throws {
        let (env, key) = try RepositoryEncryption.create(passphrase: pass)
        #expect(key.count == 32)
        #expect(env.cipher == "aes-256-gcm" && env.chunkSize == 65536 && env.kdf?.algorithm == "scrypt" && env.kms == nil)
        #expect(!env.wrappedKey!.contains(CipherPrimitives.hex(key)))
        #expect(try env.unlock(passphrase: pass, repository: "r") == key)
        #expect(throws: CipherError.self) { try env.unlock(passphrase: Array("wrong".utf8), repository: "r") }
        let next = try env.rewrapped(dataKey: key, newPassphrase: Array("new one".utf8))
        #expect(next.keyCheck == env.keyCheck && next.wrappedKey != env.wrappedKey && next.kdf?.salt != env.kdf?.salt)
        #expect(try next.unlock(passphrase: Array("new one".utf8), repository: "r") == key)
        #expect(throws: CipherError.self) { try next.unlock(passphrase: pass, repository: "r") }
        // A binding whose wrapped key was changed: refused.
        var bad = env
        bad.wrappedKey = String(bad.wrappedKey!.dropLast()) + (bad.wrappedKey!.hasSuffix("0") ? "1" : "0")
        #expect(throws: CipherError.self) { try bad.unlock(passphrase: pass, repository: "r") }
        // Unreasonable KDF parameters (a planted binding) are refused without running them.
        var huge = env; huge.kdf?.n = 1 << 30
        #expect(throws: CipherError.self) { try huge.unlock(passphrase: pass, repository: "r") }
    }

    @Test func keyCacheChecksThePassphrase() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-keys-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = KeyCache(directory: dir)
        let (env, key) = try RepositoryEncryption.create(passphrase: pass)
        #expect(try env.unlock(passphrase: pass, repository: "r", cache: cache) == key)
        let file = dir + "/" + env.fingerprint
        let attrs = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect(cache.load(fingerprint: env.fingerprint, passphrase: pass) == key)
        #expect(cache.load(fingerprint: env.fingerprint, passphrase: Array("wrong".utf8)) == nil)
        // With the cache present, a wrong passphrase is still refused.
        #expect(throws: CipherError.self) { try env.unlock(passphrase: Array("wrong".utf8), repository: "r", cache: cache) }
        // A cache file others can read is not used.
        chmod(file, 0o644)
        #expect(cache.load(fingerprint: env.fingerprint, passphrase: pass) == nil)
    }
}

@Suite struct EncryptedStoreTests {
    @Test func encryptsEverythingButTheBinding() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("walctl-enc-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = FileStore(root: root)
        let key = try CipherPrimitives.random(32)
        let store = EncryptedStore(base: base, dataKey: key)
        let seg = "wal/0000000100000000/000000010000000000000003.1c2b3a4d.zst"
        let meta = "wal/0000000100000000/000000010000000000000003.meta"
        let data = (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }
        try store.put(key: seg, bytes: data)
        try store.put(key: meta, bytes: Array("{\"name\":\"x\"}".utf8))
        try store.put(key: RepositoryLayout.infoKey, bytes: Array("{}".utf8))
        #expect(try store.get(key: seg) == data)
        #expect(try base.get(key: RepositoryLayout.infoKey) == Array("{}".utf8))
        #expect(ChunkFormat.looksEncrypted(try base.get(key: seg) ?? []))
        #expect(ChunkFormat.looksEncrypted(try base.get(key: meta) ?? []))
        #expect(try base.head(key: seg)?.size == ChunkFormat.encryptedSize(plaintext: 200_000))
        // One object's bytes put under another's name: refused.
        try base.put(key: "wal/0000000100000000/000000010000000000000004.meta", bytes: try base.get(key: meta)!)
        #expect(throws: CipherError.self) { _ = try store.get(key: "wal/0000000100000000/000000010000000000000004.meta") }
        // Missing stays missing.
        #expect(try store.get(key: "wal/0000000100000000/nothing.meta") == nil)
        #expect(EncryptedStore.kind(of: "backup/L/backup.json") == "backup-info")
        #expect(EncryptedStore.kind(of: "backup/L/backup_manifest") == "manifest")
        #expect(EncryptedStore.kind(of: "backup/L/base.tar.zst") == "backup")
        #expect(EncryptedStore.kind(of: "wal/0000000100000000/000000010000000000000003.skipped") == "skip")
        #expect(EncryptedStore.kind(of: RepositoryLayout.infoKey) == nil)
    }
}
