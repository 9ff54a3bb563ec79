import ArgumentParser
import Commands
import Foundation

struct DecryptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Write an encrypted object's decrypted (still compressed) bytes to stdout.",
        discussion: """
            OBJECT is a repository key (wal/0000000100000000/000000010000000000000003.1c2b3a4d.zst) or a \
            local file's path (./…, /…). `walctl decrypt KEY | zstd -d > FILE` gives the archived file. \
            Every 64 KiB chunk is authenticated before it is written; a non-zero exit means the output \
            must be discarded (docs/encryption.md).
            """
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Repository key or local path of the object.") var object: String
    @Option(name: .long, help: "The object's repository key, for a local copy whose path does not show it (it is authenticated with the object).")
    var name: String?

    func run() throws {
        try runCommand {
            let config = try global.load()
            let out = FileHandle.standardOutput
            try DecryptObject.run(config: config, object: object, name: name) { chunk in
                out.write(Data(chunk))
            }
        }
    }
}

struct RepositoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repository",
        abstract: "Repository administration.",
        subcommands: [RotateKeyCommand.self]
    )
}

struct RotateKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-key",
        abstract: "Wrap the encrypted repository's data key with a new passphrase or AWS KMS key (objects are not rewritten).",
        discussion: """
            The current passphrase comes from the settings (repository-cipher-pass, -pass-file, \
            WALCTL_REPOSITORY_CIPHER_PASS); the new one from --new-pass-file or \
            WALCTL_REPOSITORY_CIPHER_NEW_PASS. Afterwards only the new passphrase opens the repository: \
            change every configuration that names the old one. A repository whose key is wrapped by \
            AWS KMS (repository-cipher-kms-key) is re-wrapped with KMS Encrypt under --new-kms-key, or \
            under its configured key again when no new key is given; then set repository-cipher-kms-key \
            to the new key.
            """
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("new-pass-file"), help: "File whose first line is the new passphrase.") var newPassFile: String?
    @Option(name: .customLong("new-kms-key"), help: "AWS KMS key (arn:..., alias/... or key id) to wrap the data key with.") var newKMSKey: String?

    func run() throws {
        try runCommand {
            let config = try global.load()
            let newPass: [UInt8]?
            if newKMSKey != nil {
                newPass = nil
            } else if let newPassFile {
                newPass = try RepositoryFactory.readPassphraseFile(newPassFile, what: "--new-pass-file")
            } else if let p = ProcessInfo.processInfo.environment["WALCTL_REPOSITORY_CIPHER_NEW_PASS"], !p.isEmpty {
                newPass = Array(p.utf8)
            } else if config[.repositoryCipherKMSKey] != nil {
                newPass = nil  // re-wrap under the configured KMS key
            } else {
                throw Failure(error: WalctlError.usage("rotate-key needs the new passphrase: --new-pass-file FILE or WALCTL_REPOSITORY_CIPHER_NEW_PASS (or --new-kms-key KEY)"), exitCode: 1)
            }
            let r = try RotateKey.run(config: config, newPassphrase: newPass, newKMSKey: newKMSKey)
            print("repository \(r.repository): data key rewrapped with \(r.wrappedBy) (wrapping \(r.oldFingerprint) -> \(r.newFingerprint)); objects unchanged")
        }
    }
}
