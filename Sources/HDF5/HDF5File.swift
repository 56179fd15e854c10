import CHDF5
import Foundation

/// A small Swift face on the HDF5 C library: datasets of Float32/Float64/Int64 arrays and string
/// attributes, addressed by '/'-separated paths. The C library is not thread-safe, so every call
/// into it holds one process-wide lock.
public final class HDF5File {
    public enum Mode { case create, readOnly }

    public struct Failure: Error, CustomStringConvertible {
        public let path: String, what: String
        public var description: String { "\(path): \(what)" }
    }

    private static let lock = NSLock()
    private static let initialised: Bool = { H5open() >= 0 }()

    public let path: String
    private let id: hid_t

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
            throw Failure(path: path, what: mode == .create ? "cannot create HDF5 file" : "not a readable HDF5 file")
        }
        id = opened
    }

    deinit { _ = HDF5File.locked { H5Fclose(id) } }

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

    /// A fixed-length string attribute on the root group.
    public func setAttribute(_ name: String, _ value: String) throws {
        let ok: Bool = HDF5File.locked {
            let type = H5Tcopy(squeeze_H5T_C_S1())
            defer { H5Tclose(type) }
            H5Tset_size(type, max(1, value.utf8.count))
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(id, name, type, space, squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT())
            guard attr >= 0 else { return false }
            defer { H5Aclose(attr) }
            var bytes = Array(value.utf8)
            if bytes.isEmpty { bytes = [0] }
            return H5Awrite(attr, type, bytes) >= 0
        }
        if !ok { throw Failure(path: path, what: "cannot write attribute '\(name)'") }
    }

    public func attribute(_ name: String) throws -> String {
        let result: String? = HDF5File.locked {
            let attr = H5Aopen(id, name, squeeze_H5P_DEFAULT())
            guard attr >= 0 else { return nil }
            defer { H5Aclose(attr) }
            let type = H5Aget_type(attr)
            defer { H5Tclose(type) }
            let size = H5Tget_size(type)
            var bytes = [UInt8](repeating: 0, count: size + 1)
            guard H5Aread(attr, type, &bytes) >= 0 else { return nil }
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let result else { throw Failure(path: path, what: "no string attribute '\(name)'") }
        return result
    }

    private func writeArray<T>(_ values: [T], shape: [Int], type: hid_t, at name: String) throws {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        let ok: Bool = HDF5File.locked {
            let dims = shape.map { hsize_t($0) }
            let space = H5Screate_simple(Int32(dims.count), dims, nil)
            defer { H5Sclose(space) }
            // Create missing intermediate groups, so "scores/doc-vqa/anls" can be written directly.
            let linkProperties = H5Pcreate(H5P_CLS_LINK_CREATE_ID_g)
            defer { H5Pclose(linkProperties) }
            H5Pset_create_intermediate_group(linkProperties, 1)
            let set = H5Dcreate2(id, name, type, space, linkProperties, squeeze_H5P_DEFAULT(), squeeze_H5P_DEFAULT())
            guard set >= 0 else { return false }
            defer { H5Dclose(set) }
            return values.withUnsafeBytes { H5Dwrite(set, type, squeeze_H5S_ALL(), squeeze_H5S_ALL(), squeeze_H5P_DEFAULT(), $0.baseAddress) >= 0 }
        }
        if !ok { throw Failure(path: path, what: "cannot write dataset '\(name)'") }
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
