

# ------------------------------------------------------------ the model


def make_operator(gene, d_model, n_slots):
    if gene["class"] not in OPERATORS:
        raise ValueError(f"operator class {gene['class']!r}: this model.py was exported for a genome of "
                         f"{', '.join(sorted(OPERATORS))} only; export this genome with livsearch")
    op = OPERATORS[gene["class"]](gene, d_model, n_slots)
    shared = gene.get("share_features")
    op.feature_source = (shared["slot"], shared["op"]) if shared else None
    return op


class Slot(nn.Module):
    """A pre-norm residual block: x + op(rms_norm(x)), or a fusion of two token mixers on the same normed
    input, combined by sum, mean or a learned per-channel gate s = sigmoid(gate): s y_0 + (1 - s) y_1."""

    def __init__(self, gene, d_model, n_slots):
        super().__init__()
        self.fusion = gene["fusion"] if "ops" in gene else "none"
        self.norm = ones(d_model)
        if self.fusion == "gate":
            self.gate = zeros(d_model)
        op_genes = gene["ops"] if "ops" in gene else [gene]
        self.ops = nn.ModuleList(make_operator(g, d_model, n_slots) for g in op_genes)

    def mix(self, ys):
        if self.fusion == "none":
            return ys[0]
        if self.fusion == "sum":
            return ys[0] + ys[1]
        if self.fusion == "mean":
            return 0.5 * ys[0] + 0.5 * ys[1]
        s = torch.sigmoid(self.gate)
        return s * ys[0] + (1.0 - s) * ys[1]


def share_weights(op, source):
    """Featurizer sharing: `op` computes with the very parameters of `source` (same class, same weights)."""
    own = dict(op.named_parameters(recurse=False))
    theirs = dict(source.named_parameters(recurse=False))
    if {n: p.shape for n, p in own.items()} != {n: p.shape for n, p in theirs.items()}:
        raise ValueError("featurizer sharing needs operators with identical weights")
    for name, p in theirs.items():
        setattr(op, name, p)


class Model(nn.Module):
    """Token embedding -> slots -> final RMSNorm -> logits through the tied embedding."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        d_model, vocab, n_slots = config["d_model"], config["vocab"], len(config["slots"])
        self.vocab = vocab
        self.embedding = normal(vocab, d_model)
        self.slots = nn.ModuleList(Slot(gene, d_model, n_slots) for gene in config["slots"])
        self.final_norm = ones(d_model)
        for s, gene in enumerate(config["slots"]):
            for o, op_gene in enumerate(gene["ops"] if "ops" in gene else [gene]):
                source = op_gene.get("share_featurizer")
                if source:
                    share_weights(self.slots[s].ops[o], self.slots[source["slot"]].ops[source["op"]])
        self.aux_loss = torch.zeros(())

    @classmethod
    def from_pretrained(cls, folder):
        """The model in `folder`: its config.json and the weights in its model.safetensors."""
        with open(os.path.join(folder, "config.json")) as f:
            model = cls(json.load(f))
        weights = os.path.join(folder, "model.safetensors")
        if not os.path.exists(weights):
            raise FileNotFoundError(f"{weights}: no weights here (Model(config) gives fresh ones)")
        model.load_safetensors(weights)
        return model

    def load_safetensors(self, path):
        tensors = read_safetensors(path)
        params = dict(self.named_parameters())  # shared weights once, under their owner's name
        missing, unexpected = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        if missing or unexpected:
            raise ValueError(f"{path}: weights do not match this genome: missing {missing[:8]}, "
                             f"unexpected {unexpected[:8]}")
        with torch.no_grad():
            for name, p in params.items():
                if tuple(tensors[name].shape) != tuple(p.shape):
                    raise ValueError(f"{path}: {name} has shape {list(tensors[name].shape)}, "
                                     f"the model needs {list(p.shape)}")
                p.copy_(tensors[name])

    def save_pretrained(self, folder):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(self.config, f, indent=2)
        write_safetensors(os.path.join(folder, "model.safetensors"), dict(self.named_parameters()))

    def forward(self, idx):
        """idx: LongTensor [batch, time] -> logits [batch, time, vocab], float32."""
        x = F.embedding(idx, self.embedding)
        features = {}  # (slot, op) -> what a feature-sharing op reads (sa: K, V; linattn: k, v, decay)
        aux = []
        for s, slot in enumerate(self.slots):
            h = rms_norm(x, slot.norm)
            ys = []
            for o, op in enumerate(slot.ops):
                y, features[(s, o)] = op(h, features.get(op.feature_source))
                ys.append(y)
                if isinstance(getattr(op, "aux_loss", None), torch.Tensor):
                    aux.append(op.aux_loss)
            x = x + slot.mix(ys)
        self.aux_loss = sum(aux) if aux else torch.zeros((), device=x.device)
        return F.linear(rms_norm(x, self.final_norm), self.embedding).float()

    def loss(self, idx, targets):
        """What livsearch trains: the mean cross-entropy of `targets` (the next tokens, [batch, time];
        -1 is ignored) plus the MoE load-balancing loss of this forward."""
        logits = self(idx)
        cross_entropy = F.cross_entropy(logits.view(-1, self.vocab), targets.reshape(-1), ignore_index=-1)
        return cross_entropy + self.aux_loss

    def step(self, token, state=None):
        """Decode one token per sequence. token: LongTensor [batch]; state: None to start a sequence,
        else what the previous call returned. Returns (logits [batch, vocab] float32, state)."""
        if state is None:
            state = {"position": 0, "ops": {}}
        position, states = state["position"], dict(state["ops"])
        x = F.embedding(token.reshape(-1, 1), self.embedding)
        for s, slot in enumerate(self.slots):
            h = rms_norm(x, slot.norm)
            ys = []
            for o, op in enumerate(slot.ops):
                shared = states.get(op.feature_source)  # the source ran first: it already holds this token
                y, states[(s, o)] = op.step(h, states.get((s, o)), shared, position)
                ys.append(y)
            x = x + slot.mix(ys)
        logits = F.linear(rms_norm(x, self.final_norm), self.embedding)[:, 0]
        return logits.float(), {"position": position + 1, "ops": states}

    def optimizer_groups(self, weight_decay):
        """AdamW parameter groups as livsearch trains: weight decay on the matrices and the embedding, none
        on gains, biases, lambdas and the SSM's a_log."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (decay if p.dim() >= 2 and not name.endswith("a_log") else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
