// MARK: - Composer

/// Builds the ``YAMLNode`` tree of one document from libyaml's events, and enforces
/// ``YAMLLimits``, unique keys and defined aliases.
///
/// Collections under construction live on an explicit stack (never recursion), so that a deep
/// text costs memory only up to ``YAMLLimits/maxDepth``.
struct Composer {
    /// A finished node with what an alias to it would repeat.
    private struct Built {
        var node: YAMLNode
        /// The nodes in its subtree, itself included.
        var nodes: Int
        /// Its height: 1 for a scalar or an empty collection.
        var height: Int
    }

    /// A collection whose end event has not come yet. A mapping's items are its keys and
    /// values in turn.
    private struct Open {
        var isMapping: Bool
        var style: YAMLNode.CollectionStyle
        var tag: YAMLTag
        var anchor: String?
        var mark: YAMLMark
        var items: [YAMLNode] = []
        var nodes = 1
        var height = 1
    }

    private let limits: YAMLLimits
    private var stack: [Open] = []
    private var anchors: [String: Built] = [:]
    private var nodeCount = 0

    init(limits: YAMLLimits) {
        self.limits = limits
    }

    /// Takes the next event of the document's node; returns the root once it is complete.
    mutating func add(_ event: Event) throws(YAMLError) -> YAMLNode? {
        switch event.kind {
        case .scalar(let text, let style, let tag, let anchor):
            try enter(at: event.mark, height: 1, nodes: 1)
            let resolved: YAMLTag
            if let tag, tag != "!" {
                resolved = YAMLTag(tag)
            } else if style == .plain && tag == nil {
                resolved = YAMLTag.resolvingPlain(text)
            } else {
                resolved = .str
            }
            let scalar = YAMLNode.Scalar(text, style: style, tag: resolved, mark: event.mark)
            return finish(Built(node: .scalar(scalar), nodes: 1, height: 1), anchor: anchor)
        case .alias(let name):
            guard let target = anchors[name] else {
                throw YAMLError(.undefinedAlias(name: name), mark: event.mark, message: "found undefined alias")
            }
            try enter(at: event.mark, height: target.height, nodes: target.nodes)
            return finish(target, anchor: nil)
        case .sequenceStart(let style, let tag, let anchor), .mappingStart(let style, let tag, let anchor):
            try enter(at: event.mark, height: 1, nodes: 1)
            var isMapping = false
            if case .mappingStart = event.kind { isMapping = true }
            let resolved = tag.flatMap { $0 == "!" ? nil : YAMLTag($0) } ?? (isMapping ? .map : .seq)
            stack.append(Open(isMapping: isMapping, style: style, tag: resolved, anchor: anchor, mark: event.mark))
            return nil
        case .sequenceEnd, .mappingEnd:
            let open = stack.removeLast()
            let node: YAMLNode
            if open.isMapping {
                let pairs = stride(from: 0, to: open.items.count - 1, by: 2).map {
                    YAMLNode.Mapping.Pair(key: open.items[$0], value: open.items[$0 + 1])
                }
                try Self.checkUniqueKeys(pairs)
                node = .mapping(YAMLNode.Mapping(pairs: pairs, style: open.style, tag: open.tag, mark: open.mark))
            } else {
                node = .sequence(YAMLNode.Sequence(open.items, style: open.style, tag: open.tag, mark: open.mark))
            }
            return finish(Built(node: node, nodes: open.nodes, height: open.height), anchor: open.anchor)
        case .streamStart, .streamEnd, .documentStart, .documentEnd:
            // libyaml gives exactly one node per document, so these never come inside it.
            preconditionFailure("libyaml sent \(event.kind) inside a document")
        }
    }

    // MARK: - Limits

    /// Counts a node (or the subtree an alias repeats) starting at the current depth.
    private mutating func enter(at mark: YAMLMark, height: Int, nodes: Int) throws(YAMLError) {
        if stack.count + height > limits.maxDepth {
            throw YAMLError(
                .tooDeep(limit: limits.maxDepth), mark: mark,
                message: "nodes are nested deeper than \(limits.maxDepth) levels")
        }
        nodeCount += nodes
        if nodeCount > limits.maxNodes {
            throw YAMLError(
                .tooManyNodes(limit: limits.maxNodes), mark: mark,
                message: "the document has more than \(limits.maxNodes) nodes (aliases counted with what they repeat)")
        }
    }

    /// Adds a finished node to the collection it is in, registering its anchor; returns it when
    /// it is the root.
    private mutating func finish(_ built: Built, anchor: String?) -> YAMLNode? {
        // Registered only now: an alias inside the node it names is undefined, so no cycles.
        if let anchor { anchors[anchor] = built }
        guard !stack.isEmpty else { return built.node }
        let last = stack.count - 1
        stack[last].items.append(built.node)
        stack[last].nodes += built.nodes
        stack[last].height = max(stack[last].height, built.height + 1)
        return nil
    }

    // MARK: - Unique keys

    /// What makes two keys the same: a scalar's text and resolved tag (so `1` and `"1"` differ,
    /// `a` and `"a"` do not), a collection's tag and items; never style or place.
    private indirect enum KeyIdentity: Hashable {
        case scalar(String, YAMLTag)
        case collection(YAMLTag, [KeyIdentity])

        init(_ node: YAMLNode) {
            switch node {
            case .scalar(let scalar): self = .scalar(scalar.text, scalar.tag)
            case .sequence(let sequence): self = .collection(sequence.tag, sequence.items.map(KeyIdentity.init))
            case .mapping(let mapping):
                self = .collection(mapping.tag, mapping.pairs.flatMap { [KeyIdentity($0.key), KeyIdentity($0.value)] })
            }
        }
    }

    /// Refuses a mapping with a key given twice, naming every such key (sorted) at the first
    /// occurrence of the first.
    private static func checkUniqueKeys(_ pairs: [YAMLNode.Mapping.Pair]) throws(YAMLError) {
        guard pairs.count > 1 else { return }
        var firstIndex: [KeyIdentity: Int] = [:]
        var repeated: Set<Int> = []
        for (index, pair) in pairs.enumerated() {
            let identity = KeyIdentity(pair.key)
            if let first = firstIndex[identity] {
                repeated.insert(first)
            } else {
                firstIndex[identity] = index
            }
        }
        guard !repeated.isEmpty else { return }
        let keys = repeated.map { (shown: shown(pairs[$0].key), key: pairs[$0].key) }.sorted { $0.shown < $1.shown }
        throw YAMLError(
            .duplicateKeys(keys: keys.map(\.shown)), mark: keys[0].key.mark,
            message: "a mapping has the key\(keys.count == 1 ? "" : "s") "
                + keys.map(\.shown).joined(separator: ", ") + " more than once")
    }

    /// A key as an error shows it.
    private static func shown(_ node: YAMLNode) -> String {
        switch node {
        case .scalar(let scalar): scalar.text
        case .mapping: "<a mapping>"
        case .sequence: "<a sequence>"
        }
    }
}
