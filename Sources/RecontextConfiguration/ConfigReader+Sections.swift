import Logging
import RecontextCore
import YAML

// MARK: - The sections of the file

extension ConfigReader {
    // MARK: Sections

    mutating func readRoot(_ root: YAMLNode, into config: inout DaemonConfiguration) {
        let sections = ["libvirt", "images", "host", "context", "pipeline", "limits", "log", "metrics"]
        for (key, value) in entries(root, path: "", known: sections) {
            switch key {
            case "libvirt": readLibvirt(value, into: &config.libvirt)
            case "images": readImages(value, into: &config.images)
            case "host": readHost(value, into: &config.host, limits: config.limits)
            case "context": readContext(value, into: &config.context)
            case "pipeline": readPipeline(value, into: &config.pipeline)
            case "limits": readLimits(value, into: &config.limits)
            case "metrics": readMetrics(value, into: &config.metrics)
            default: readLog(value, into: &config)
            }
        }
    }

    mutating func readLibvirt(_ node: YAMLNode, into libvirt: inout DaemonConfiguration.Libvirt) {
        for (key, value) in entries(node, path: "libvirt", known: ["uri", "reconnect-max-backoff"]) {
            let path = "libvirt.\(key)"
            switch key {
            case "uri":
                if let uri = string(value, path) {
                    if uri.contains(where: \.isWhitespace) || !uri.contains(":") {
                        report(
                            value, path, "expected a libvirt URI like \"qemu:///system\", got \(Validation.quote(uri))")
                    } else {
                        libvirt.uri = uri
                    }
                }
            default:
                if let duration = duration(value, path, unit: .seconds(1), unitName: "seconds", allowZero: false) {
                    libvirt.reconnectMaxBackoff = duration
                }
            }
        }
    }

    mutating func readImages(_ node: YAMLNode, into images: inout DaemonConfiguration.Images) {
        for (key, value) in entries(node, path: "images", known: ["directory", "mode", "group", "max-size", "shared"]) {
            let path = "images.\(key)"
            switch key {
            case "directory":
                if let directory = absolutePath(value, path) { images.directory = directory }
            case "mode":
                if let text = scalar(value, path, expected: "an octal mode like \"0640\"") {
                    if let mode = Validation.mode(text) {
                        images.mode = mode
                    } else {
                        report(value, path, "expected an octal mode like \"0640\", got \(Validation.quote(text))")
                    }
                }
            case "group":
                if Self.isPlainNull(value) {
                    images.group = nil
                } else if let group = string(value, path) {
                    if Self.isGroupName(group) {
                        images.group = group
                    } else {
                        report(
                            value, path,
                            "expected a group name like \"libvirt-qemu\" or a numeric gid, got \(Validation.quote(group))"
                        )
                    }
                }
            case "shared":
                if let text = scalar(value, path, expected: "true or false") {
                    switch text.lowercased() {
                    case "true", "yes", "on": images.shared = true
                    case "false", "no", "off": images.shared = false
                    default: report(value, path, "expected true or false, got \(Validation.quote(text))")
                    }
                }
            default:
                if let size = size(value, path, range: (64 << 10)...(1 << 32)) {
                    images.maxSize = size
                }
            }
        }
    }

    static func isGroupName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 32 else { return false }
        if name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) { return true }
        for (index, byte) in name.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."):
                if index == 0 { return false }
            case UInt8(ascii: "$"): if index != name.utf8.count - 1 { return false }
            default: return false
            }
        }
        return true
    }

    mutating func readHost(_ node: YAMLNode, into host: inout HostFacts, limits: MetadataLimits) {
        var secretNodes: [(String, YAMLNode)] = []
        for (key, value) in entries(node, path: "host", known: ["name", "variables", "secret-variables"]) {
            let path = "host.\(key)"
            switch key {
            case "name":
                if let name = string(value, path) {
                    if name.utf8.count > 253
                        || name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == " " })
                    {
                        report(
                            value,
                            path,
                            "expected a host name without spaces or control characters, at most 253 bytes, got \(Validation.quote(name))"
                        )
                    } else {
                        host.name = name
                    }
                }
            case "variables":
                guard case .mapping(let mapping) = value else {
                    if !value.isNull {
                        report(value, path, "expected a mapping of variable names to strings, got \(Self.shown(value))")
                    }
                    continue
                }
                var variables: [String: String] = [:]
                for pair in mapping {
                    let keyNode = pair.key
                    guard case .scalar(let keyScalar) = keyNode else {
                        report(keyNode, path, "variable names must be plain strings, got \(Self.shown(keyNode))")
                        continue
                    }
                    let name = keyScalar.text
                    let variablePath = "\(path).\(name)"
                    if let problem = Validation.variableName(name, maxLength: limits.maxNameLength) {
                        report(keyNode, variablePath, problem)
                        continue
                    }
                    if Validation.reservedHostVariableNames.contains(name) {
                        report(
                            keyNode,
                            variablePath,
                            "\(Validation.quote(name)) is reserved (reserved: \(Validation.reservedHostVariableNames.sorted().joined(separator: ", ")))"
                        )
                        continue
                    }
                    if let text = string(pair.value, variablePath, nonEmpty: false) {
                        variables[name] = text
                    }
                }
                host.variables = variables
            default:
                guard case .sequence(let sequence) = value else {
                    if !value.isNull {
                        report(value, path, "expected a list of variable names, got \(Self.shown(value))")
                    }
                    continue
                }
                for item in sequence {
                    if let name = string(item, path) { secretNodes.append((name, item)) }
                }
            }
        }
        var secrets: Set<String> = []
        for (name, node) in secretNodes {
            if host.variables[name] == nil {
                report(node, "host.secret-variables", "\(Validation.quote(name)) is not one of host.variables")
            } else {
                secrets.insert(name)
            }
        }
        host.secretVariables = secrets
    }

    mutating func readContext(_ node: YAMLNode, into context: inout DaemonConfiguration.Context) {
        for (key, value) in entries(
            node, path: "context", known: ["default-format", "managed", "device", "instance-id", "companion-directory"])
        {
            let path = "context.\(key)"
            switch key {
            case "default-format":
                if let format = choice(value, path, ContextFormat.self) { context.defaultFormat = format }
            case "managed":
                if let managed = choice(value, path, DaemonConfiguration.ManagedDomains.self) {
                    context.managed = managed
                }
            case "instance-id":
                if let policy = choice(value, path, InstanceIDPolicy.self) { context.instanceID = policy }
            case "companion-directory":
                if let directory = absolutePath(value, path) { context.companionDirectory = directory }
            default:
                for (deviceKey, deviceValue) in entries(value, path: path, known: ["mode", "target"]) {
                    let devicePath = "\(path).\(deviceKey)"
                    if deviceKey == "mode" {
                        if let mode = choice(deviceValue, devicePath, DaemonConfiguration.DeviceMode.self) {
                            context.device.mode = mode
                        }
                    } else if Self.isPlainNull(deviceValue) {
                        context.device.target = nil
                    } else if let target = string(deviceValue, devicePath) {
                        if let problem = Validation.deviceTarget(target) {
                            report(deviceValue, devicePath, problem)
                        } else {
                            context.device.target = target
                        }
                    }
                }
            }
        }
    }
}
