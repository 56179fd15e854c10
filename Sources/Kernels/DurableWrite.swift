import Foundation

/// A file that could not be written; the file it would have replaced is untouched.
public struct WriteError: Error, CustomStringConvertible {
    public let file: String, problem: String
    public init(file: String, problem: String) { self.file = file; self.problem = problem }
    public var description: String { "\(file): \(problem)" }

    /// Why the last system call failed, in words ("no space left on the device", …).
    public static var reason: String { String(cString: strerror(errno)).lowercased() }

    /// Why a Foundation file operation failed, in the system's words (Foundation's own are vague).
    public static func reason(of error: Error) -> String {
        var underlying = error as NSError
        while let next = underlying.userInfo[NSUnderlyingErrorKey] as? Error { underlying = next as NSError }
        if underlying.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(underlying.code))).lowercased() }
        if let path = (error as NSError).userInfo[NSFilePathErrorKey] as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return isDirectory.boolValue ? "it is a directory" : "it cannot be read" }
            return "no such file"
        }
        return underlying.localizedDescription
    }
}

/// Writes that never lose the old file: into a temporary file in the same directory, synced to
/// the disk and checked, then renamed over the old file (a rename replaces it whole), and the
/// directory synced. A failure anywhere removes the temporary file and leaves the old one as it
/// was.
public enum DurableWrite {
    /// Makes a directory and its parents; a failure names it and says why in one line
    /// (read-only file system, no space left, a file in the way), not in Foundation's terms.
    public static func makeDirectory(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw WriteError(file: path, problem: "cannot be made a directory (\(WriteError.reason(of: error)))")
        }
    }

    /// Replaces `path` with what `write` puts in the temporary path it is given; `verify` then
    /// reads the temporary file back and throws if it is not what was meant.
    public static func replace(_ path: String, write: (String) throws -> Void, verify: (String) throws -> Void = { _ in }) throws {
        let temporary = try prepare(path, { temporary in
            try write(temporary)
            try sync(temporary)
            try verify(temporary)
        })
        try commit(temporary, to: path)
    }

    /// Replaces `path` with `data`, read back and compared before it is renamed into place.
    public static func replace(_ path: String, with data: Data) throws { try replaceAll([(path, data)]) }

    /// Replaces several files as a set: every one written and checked first, then all renamed
    /// into place; if any cannot be written, none is replaced.
    public static func replaceAll(_ files: [(path: String, data: Data)]) throws {
        var written: [(temporary: String, path: String)] = []
        do {
            for (path, data) in files {
                written.append((try prepare(path) { temporary in
                    guard FileManager.default.createFile(atPath: temporary, contents: data) else {
                        throw WriteError(file: path, problem: "cannot be written (\(WriteError.reason))")
                    }
                    try sync(temporary)
                    guard FileManager.default.contents(atPath: temporary) == data else { throw WriteError(file: path, problem: "did not read back as written") }
                }, path))
            }
        } catch {
            for w in written { unlink(w.temporary) }
            throw error
        }
        for w in written { try commit(w.temporary, to: w.path) }
    }

    /// Runs `body` on a fresh temporary path beside `path`; on failure removes it and rethrows.
    private static func prepare(_ path: String, _ body: (String) throws -> Void) throws -> String {
        let temporary = path + ".partial-\(getpid())"
        do {
            try body(temporary)
        } catch {
            unlink(temporary)
            throw error
        }
        return temporary
    }

    private static func commit(_ temporary: String, to path: String) throws {
        guard rename(temporary, path) == 0 else {
            let reason = WriteError.reason
            unlink(temporary)
            throw WriteError(file: path, problem: "cannot be renamed into place (\(reason))")
        }
        try? sync((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent)
    }

    /// Flushes a file (or directory) to the disk.
    public static func sync(_ path: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw WriteError(file: path, problem: "cannot be opened to sync (\(WriteError.reason))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw WriteError(file: path, problem: "cannot be synced to the disk (\(WriteError.reason))") }
    }
}
