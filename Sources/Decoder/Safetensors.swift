import Foundation
import Kernels
import LayerGraph

/// A checkpoint file that cannot be used, with the file and the problem named.
public struct CheckpointError: InputError {
    public let file: String
    public let problem: String
    public var description: String { "\(file): \(problem)" }
}

/// The safetensors format: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`, then the raw bytes.
public struct SafetensorsFile {
    public struct Entry { public let dtype: String; public let shape: [Int]; let range: Range<Int> }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let payload: Data

    private static let elementSize = ["F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8]

    public init(path: String) throws {
        self.path = path
        func fail(_ problem: String) -> CheckpointError { CheckpointError(file: path, problem: problem) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) }
        catch { throw fail("cannot be read (\(WriteError.reason(of: error)))") }
        guard data.count >= 8 else { throw fail("is \(data.count) bytes long; a safetensors file starts with an 8-byte header length") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes): truncated or not safetensors")
        }
        let headerEnd = 8 + Int(headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)),
              let header = json as? [String: Any] else {
            throw fail("header (bytes 8..<\(headerEnd)) is not a JSON object")
        }
        payload = data.subdata(in: headerEnd..<data.count)
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw fail("__metadata__ must map strings to strings") }
                metadata = m
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shape = e["shape"] as? [Int], let offsets = e["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor '\(name)': expected {dtype, shape, data_offsets: [begin, end]}")
            }
            guard let size = SafetensorsFile.elementSize[dtype] else {
                throw fail("tensor '\(name)': dtype \(dtype) is not supported (F32, F16, BF16, I32, I64)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw fail("tensor '\(name)': negative shape or offsets")
            }
            guard offsets[1] <= payload.count else {
                throw fail("tensor '\(name)': data ends at byte \(offsets[1]) but only \(payload.count) bytes follow the header: truncated file")
            }
            let elements = shape.reduce((1, false)) { r, n in let m = r.0.multipliedReportingOverflow(by: n); return (m.partialValue, r.1 || m.overflow) }
            let bytes = elements.0.multipliedReportingOverflow(by: size)
            guard !elements.1, !bytes.overflow, offsets[1] - offsets[0] == bytes.partialValue else {
                throw fail("tensor '\(name)': \(offsets[1] - offsets[0]) bytes do not hold a \(dtype) tensor of shape \(shape)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// A floating-point tensor, widened to Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw CheckpointError(file: path, problem: "has no tensor '\(name)'") }
        let t = Tensor(shape: e.shape)
        payload.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[e.range])
            for i in 0..<t.count {
                switch e.dtype {
                case "F32": t[i] = Float(bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian)
                case "F16": t[i] = Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian))
                case "BF16": t[i] = Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16)
                case "I32": t[i] = Float(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                default: t[i] = Float(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                }
            }
        }
        return t
    }

    /// An integer tensor (token ids), as Int32.
    public func integers(_ name: String) throws -> [Int32] {
        guard let e = entries[name], e.dtype == "I32" || e.dtype == "I64" else {
            throw CheckpointError(file: path, problem: "has no integer tensor '\(name)'")
        }
        return try payload.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[e.range])
            if e.dtype == "I32" { return (0..<bytes.count / 4).map { Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) } }
            return try (0..<bytes.count / 8).map { i in
                let value = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                guard let narrow = Int32(exactly: value) else {
                    throw CheckpointError(file: path, problem: "tensor '\(name)': element \(i) is \(value), outside the 32-bit range of token ids")
                }
                return narrow
            }
        }
    }

    /// Writes F32 tensors (and I32 integer arrays) atomically: to a temporary name, then renamed.
    public static func write(floats: [(String, Tensor)], integers: [(String, [Int32], [Int])] = [],
                             metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for (name, t) in floats {
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [body.count, body.count + 4 * t.count]]
            body.append(contentsOf: UnsafeRawBufferPointer(start: t.data, count: 4 * t.count))
        }
        for (name, values, shape) in integers {
            header[name] = ["dtype": "I32", "shape": shape, "data_offsets": [body.count, body.count + 4 * values.count]]
            values.withUnsafeBytes { body.append(contentsOf: $0) }
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))  // 8-byte alignment
        var file = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(body)
        do {
            try DurableWrite.replace(path, with: file)
        } catch let error as WriteError {
            throw CheckpointError(file: path, problem: error.problem)
        }
    }
}

extension LlamaModel {
    /// Saves the weights with Hugging Face names and the configuration in the metadata.
    public func save(to path: String) throws {
        let config = String(decoding: try sortedJSON(self.config), as: UTF8.self)
        try SafetensorsFile.write(floats: parameters.map { ($0.name, $0.value) },
                                  metadata: ["format": "pt", "squeeze.config": config], to: path)
    }

    /// Loads a checkpoint; the configuration comes from the file's metadata unless given.
    public static func load(from path: String, config: LlamaConfig? = nil) throws -> LlamaModel {
        let file = try SafetensorsFile(path: path)
        guard let config = try config ?? file.metadata["squeeze.config"].map({ json in
            do { return try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8)) }
            catch { throw CheckpointError(file: path, problem: "metadata 'squeeze.config' is not a model configuration") }
        }) else { throw CheckpointError(file: path, problem: "no model configuration given and none in the metadata") }
        if !config.problems.isEmpty {
            throw CheckpointError(file: path, problem: "model configuration: " + config.problems.joined(separator: "; "))
        }
        var tensors: [String: Tensor] = [:]
        for name in file.entries.keys { tensors[name] = try file.tensor(name) }
        do { return try LlamaModel(config: config, tensors: tensors) }
        catch { throw CheckpointError(file: path, problem: "\(error)") }
    }
}

extension SafetensorsFile {
    /// Each parameter's value from the tensor of its name, its shape checked.
    public func fill(_ parameters: [Parameter]) throws {
        for p in parameters {
            let t = try tensor(p.name)
            guard t.shape == p.shape else { throw CheckpointError(file: path, problem: "tensor \(p.name) has shape \(t.shape), expected \(p.shape)") }
            p.value.fill(from: t)
        }
    }
}

/// JSON with its keys in sorted order, so the same value always gives the same bytes.
public func sortedJSON<T: Encodable>(_ value: T) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return try encoder.encode(value)
}
