import CHDF5
import Foundation

/// A small Swift face on the HDF5 C library: datasets of Float32/Float64/Int64 arrays and string
/// attributes, addressed by '/'-separated paths. The C library is not thread-safe, so every call
/// into it holds one process-wide lock.
public final class HDF5File {
    public enum Mode { case create, readOnly }

    public struct Failure: Error, CustomStringConvertible {
        public let path: String, what: String
        public init(path: String, what: String) { self.path = path; self.what = what }
        public var description: String { "\(path): \(what)" }
    }

    private static let lock = NSLock()
    private static let initialised: Bool = { H5open() >= 0 }()

    public let path: String
    private let id: hid_t
    private var isOpen = true

    public init(path: String, mode: Mode) throws {
        self.path = path
        let opened: hid_t = HDF5File.locked {
            _ = HDF5File.initialised
            H5Eset_auto2(squeeze_H5E_DEFAULT(), nil, nil)   // errors are reported by return codes, not printed
            switch mode {
            case .create: return H5Fcreate(path, squeeze_H5F_ACC_TRUNC(), squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT())
            case .readOnly: return H5Fopen(path, squeeze_H5F_ACC_RDONLY(), squeeze_H5P_DEFAULT())
            }
        }
        guard opened >= 0 else {
            throw Failure(path: path, what: mode == .create ? "cannot create HDF5 file" + HDF5File.systemReason : "not a readable HDF5 file")
        }
        id = opened
    }

    /// Flushes and closes the file, reporting what failed: a written file is whole only once this
    /// returns (a full disk often shows only here).
    public func close() throws {
        guard isOpen else { return }
        isOpen = false
        let ok: Bool = HDF5File.locked {
            let flushed = H5Fflush(id, H5F_SCOPE_LOCAL) >= 0
            return H5Fclose(id) >= 0 && flushed
        }
        if !ok { throw Failure(path: path, what: "cannot be finished" + HDF5File.systemReason) }
    }

    deinit { if isOpen { _ = HDF5File.locked { H5Fclose(id) } } }

    /// The system's reason for the last failed call where it says something about the disk.
    private static var systemReason: String {
        [ENOSPC, EDQUOT, EROFS, EIO, EACCES].contains(errno) ? " (\(String(cString: strerror(errno)).lowercased()))" : ""
    }

    public func write(_ values: [Float], shape: [Int], at name: String) throws {
        try writeArray(values, shape: shape, type: squeeze_H5T_NATIVE_FLOAT(), at: name)
    }

    public func write(_ values: [Double], shape: [Int], at name: String) throws {
        try writeArray(values, shape: shape, type: squeeze_H5T_NATIVE_DOUBLE(), at: name)
    }

    public func readFloats(_ name: String) throws -> (values: [Float], shape: [Int]) {
        try readArray(name, type: squeeze_H5T_NATIVE_FLOAT(), zero: Float(0))
    }

    public func readDoubles(_ name: String) throws -> (values: [Double], shape: [Int]) {
        try readArray(name, type: squeeze_H5T_NATIVE_DOUBLE(), zero: 0.0)
    }

    /// A string attribute on an object ("/" is the root group; the object must exist).
    public func setAttribute(_ name: String, _ value: String, on object: String = "/") throws {
        var bytes = Array(value.utf8)
        if bytes.isEmpty { bytes = [0] }
        try writeAttribute(name, on: object, type: HDF5File.stringType(size: bytes.count), bytes: bytes)
    }

    /// A Float64 attribute on an object.
    public func setAttribute(_ name: String, _ value: Double, on object: String = "/") throws {
        try writeAttribute(name, on: object, type: H5Tcopy(squeeze_H5T_NATIVE_DOUBLE()), bytes: withUnsafeBytes(of: value) { Array($0) })
    }

    public func attribute(_ name: String, on object: String = "/") throws -> String {
        let result: String? = HDF5File.locked {
            withAttribute(name, on: object) { attr in
                let type = H5Aget_type(attr)
                defer { H5Tclose(type) }
                guard H5Tget_class(type) == H5T_STRING else { return nil }
                var bytes = [UInt8](repeating: 0, count: H5Tget_size(type) + 1)
                guard H5Aread(attr, type, &bytes) >= 0 else { return nil }
                return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        guard let result else { throw Failure(path: path, what: "no string attribute '\(name)' on '\(object)'") }
        return result
    }

    public func numberAttribute(_ name: String, on object: String = "/") throws -> Double {
        let result: Double? = HDF5File.locked {
            withAttribute(name, on: object) { attr in
                var value = 0.0
                return H5Aread(attr, squeeze_H5T_NATIVE_DOUBLE(), &value) >= 0 ? value : nil
            }
        }
        guard let result else { throw Failure(path: path, what: "no numeric attribute '\(name)' on '\(object)'") }
        return result
    }

    /// A group (and any missing parents).
    public func createGroup(_ name: String) throws {
        let ok: Bool = HDF5File.locked {
            let links = HDF5File.intermediateGroups()
            defer { H5Pclose(links) }
            let group = H5Gcreate2(id, name, links, squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT())
            guard group >= 0 else { return false }
            return H5Gclose(group) >= 0
        }
        if !ok { throw Failure(path: path, what: "cannot create group '\(name)'" + HDF5File.systemReason) }
    }

    /// The names of a group's members, in name order.
    public func members(of group: String) throws -> [String] {
        let names: [String]? = HDF5File.locked {
            guard exists(group) else { return nil }
            let g = H5Gopen2(id, group, squeeze_H5P_DEFAULT())
            guard g >= 0 else { return nil }
            defer { H5Gclose(g) }
            var info = H5G_info_t()
            guard H5Gget_info(g, &info) >= 0 else { return nil }
            return (0..<info.nlinks).compactMap { i in
                let size = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, squeeze_H5P_DEFAULT())
                guard size >= 0 else { return nil }
                var bytes = [CChar](repeating: 0, count: Int(size) + 1)
                H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, &bytes, bytes.count, squeeze_H5P_DEFAULT())
                return String(cString: bytes)
            }
        }
        guard let names else { throw Failure(path: path, what: "no group '\(group)'") }
        return names
    }

    /// Whether an object exists at a '/'-separated path (every prefix is checked, as HDF5 1.10 requires).
    public func contains(_ object: String) -> Bool { HDF5File.locked { exists(object) } }

    /// Strings as a dataset of fixed-length strings (the longest one's length).
    public func write(strings: [String], at name: String) throws {
        let size = max(1, strings.map(\.utf8.count).max() ?? 1)
        var bytes = [UInt8](repeating: 0, count: size * strings.count)
        for (i, s) in strings.enumerated() { for (j, b) in s.utf8.enumerated() { bytes[i * size + j] = b } }
        let type = HDF5File.locked { HDF5File.stringType(size: size) }
        defer { _ = HDF5File.locked { H5Tclose(type) } }
        try writeArray(bytes, shape: [strings.count], type: type, at: name, count: strings.count)
    }

    public func readStrings(_ name: String) throws -> [String] {
        let result: [String]? = HDF5File.locked {
            let set = H5Dopen2(id, name, squeeze_H5P_DEFAULT())
            guard set >= 0 else { return nil }
            defer { H5Dclose(set) }
            let type = H5Dget_type(set), space = H5Dget_space(set)
            defer { H5Tclose(type); H5Sclose(space) }
            guard H5Tget_class(type) == H5T_STRING, H5Tis_variable_str(type) == 0 else { return nil }
            let size = H5Tget_size(type), count = Int(H5Sget_simple_extent_npoints(space))
            var bytes = [UInt8](repeating: 0, count: size * count)
            guard H5Dread(set, type, squeeze_H5S_ALL(), squeeze_H5S_ALL(), squeeze_H5P_DEFAULT(), &bytes) >= 0 else { return nil }
            return (0..<count).map { i in String(decoding: bytes[i * size..<(i + 1) * size].prefix { $0 != 0 }, as: UTF8.self) }
        }
        guard let result else { throw Failure(path: path, what: "no readable string dataset '\(name)'") }
        return result
    }

    private func exists(_ object: String) -> Bool {
        var prefix = ""
        for part in object.split(separator: "/") {
            prefix += "/" + part
            guard H5Lexists(id, prefix, squeeze_H5P_DEFAULT()) > 0 else { return false }
        }
        return true
    }

    private func withAttribute<R>(_ name: String, on object: String, _ body: (hid_t) -> R?) -> R? {
        guard exists(object), H5Aexists_by_name(id, object, name, squeeze_H5P_DEFAULT()) > 0 else { return nil }
        let attr = H5Aopen_by_name(id, object, name, squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT())
        guard attr >= 0 else { return nil }
        defer { H5Aclose(attr) }
        return body(attr)
    }

    /// Writes an attribute of `type` (which it closes), replacing one of the same name.
    private func writeAttribute(_ name: String, on object: String, type: hid_t, bytes: [UInt8]) throws {
        let ok: Bool = HDF5File.locked {
            defer { H5Tclose(type) }
            guard exists(object) else { return false }
            if H5Aexists_by_name(id, object, name, squeeze_H5P_DEFAULT()) > 0 { H5Adelete_by_name(id, object, name, squeeze_H5P_DEFAULT()) }
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate_by_name(id, object, name, type, space, squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT())
            guard attr >= 0 else { return false }
            defer { H5Aclose(attr) }
            return H5Awrite(attr, type, bytes) >= 0
        }
        if !ok { throw Failure(path: path, what: "cannot write attribute '\(name)' on '\(object)'" + HDF5File.systemReason) }
    }

    private static func stringType(size: Int) -> hid_t {
        let type = H5Tcopy(squeeze_H5T_C_S1())
        H5Tset_size(type, size)
        return type
    }

    private static func intermediateGroups() -> hid_t {
        let links = H5Pcreate(H5P_CLS_LINK_CREATE_ID_g)
        H5Pset_create_intermediate_group(links, 1)
        return links
    }

    private func writeArray<T>(_ values: [T], shape: [Int], type: hid_t, at name: String, count: Int? = nil) throws {
        precondition(shape.reduce(1, *) == count ?? values.count, "shape \(shape) does not hold \(values.count) values")
        let ok: Bool = HDF5File.locked {
            let dims = shape.map { hsize_t($0) }
            let space = H5Screate_simple(Int32(dims.count), dims, nil)
            defer { H5Sclose(space) }
            // Create missing intermediate groups, so "scores/doc-vqa/anls" can be written directly.
            let linkProperties = HDF5File.intermediateGroups()
            defer { H5Pclose(linkProperties) }
            let set = H5Dcreate2(id, name, type, space, linkProperties, squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT())
            guard set >= 0 else { return false }
            defer { H5Dclose(set) }
            return values.withUnsafeBytes { H5Dwrite(set, type, squeeze_H5S_ALL(), squeeze_H5S_ALL(), squeeze_H5P_DEFAULT(), $0.baseAddress) >= 0 }
        }
        if !ok { throw Failure(path: path, what: "cannot write dataset '\(name)'" + HDF5File.systemReason) }
    }

    private func readArray<T>(_ name: String, type: hid_t, zero: T) throws -> (values: [T], shape: [Int]) {
        let result: ([T], [Int])? = HDF5File.locked {
            let set = H5Dopen2(id, name, squeeze_H5P_DEFAULT())
            guard set >= 0 else { return nil }
            defer { H5Dclose(set) }
            let space = H5Dget_space(set)
            defer { H5Sclose(space) }
            let rank = Int(H5Sget_simple_extent_ndims(space))
            var dims = [hsize_t](repeating: 0, count: max(rank, 1))
            H5Sget_simple_extent_dims(space, &dims, nil)
            let shape = dims.prefix(rank).map { Int($0) }
            var values = [T](repeating: zero, count: shape.reduce(1, *))
            let ok = values.withUnsafeMutableBytes { H5Dread(set, type, squeeze_H5S_ALL(), squeeze_H5S_ALL(), squeeze_H5P_DEFAULT(), $0.baseAddress) >= 0 }
            return ok ? (values, shape) : nil
        }
        guard let result else { throw Failure(path: path, what: "no readable dataset '\(name)'") }
        return result
    }

    private static func locked<R>(_ body: () -> R) -> R {
        lock.lock(); defer { lock.unlock() }
        return body()
    }
}
