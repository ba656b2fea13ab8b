"""`SearchConfig`: every knob of an architecture search, one frozen dataclass per concern.

YAML layout, nested by section (every key optional; unknown keys are errors; `racl config show
search` prints them all with their meaning):

    space: darts              # darts | nb201 (racl.search_space.registry)
    strategy: racl            # racl | darts | random | pcdarts | advrush | gdas
    epochs: 50
    supernet:     {channels: null, layers: null, steps: null, keep_none: null}   # null: the space's defaults
    distribution: {cov: full, init_sigma: 0.1, normalize: true, discretize: quantile, decay_to: init,
                   learn_sigma: true}
    constraint:   {eta: 0.9, lbar_mode: reference, lbar: 2.0, rho: 1.0, nu0: 0.0}
    bound:        {bound_method: delta, bn: none, recalibrate_batches: 10, mc_samples: 256,
                   lipschitz_refresh_every: 10, measure_power_iters: 20}
    optim:        {w_lr: 0.025, w_lr_min: 0.001, arch_lr: 6.0e-4, arch_wd: 1.0e-3, amp: none, ...}
    robust:       {gamma: null, adv: none, gradnorm_subset: 1.0}
    attack:       {norm: linf, eps: 8/255, alpha: null, steps: 4, random_start: true, loss: ce}
    random:       {candidates: 20, candidate_images: 500}    # the random strategy's own section
    advrush:      {a_gamma: 0.01, cure_lambda: 4.0, a_warmup_epochs: 0, h_schedule: [0.0, 0.3, 0.6, 0.9, 1.2, 1.5],
                   quirk_eval_after_reg: false, quirk_find_z_grad: false}
    gdas:         {tau_max: 10.0, tau_min: 0.1, cell_rule: pairs}
    pcdarts:      {k: 4}

Defaults are the paper's settings where the paper states them (8 cells, C = 16, batch 128, 50
epochs, eta 0.9, Adam 6e-4 / 1e-3 for the distributions; method.md sections 1 and 5) and DARTS's
for the weights (SGD 0.025 cosine to 0.001, momentum 0.9, wd 3e-4, clip 5). Every other default is
ours ([design] in method.md) and is marked so below. `--set` takes `section.key` (`constraint.eta`)
or a top-level key (`epochs`). Options removed as constants in practice: docs/method.md section 8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from racl import config as configs
from racl.amp import AMP_HELP, check_amp
from racl.attacks import AttackSpec
from racl.attacks.spec import TRAINING_ATTACKS
from racl.config import Flag, check, check_one_of
from racl.search.registry import REGISTRY
from racl.search_space import registry as spaces

STRATEGIES = tuple(REGISTRY)  # racl, darts, random, advrush, gdas (racl/search/registry.py)


@dataclass(frozen=True)
class SupernetConfig:
    """The search network's size; null: the space's default (DARTS [paper]: C = 16, 8 cells (reductions
    at 1/3 and 2/3), 4 nodes per cell)."""

    channels: int | None = None  # initial channels C
    layers: int | None = None    # cells (DARTS: all cells; NAS-Bench-201: cells per stage)
    steps: int | None = None     # intermediate nodes per cell
    keep_none: bool | None = None  # [design] may a discrete edge keep `none`? null: the space's rule (NB201: yes)

    def __post_init__(self) -> None:
        check((self.channels or 1) >= 1 and (self.layers or 1) >= 1 and (self.steps or 2) >= 2,
              "supernet needs channels >= 1, layers >= 1 and steps >= 2")


@dataclass(frozen=True)
class DistributionConfig:
    cov: str = "full"          # [design] full | diag covariance of each log-normal
    init_sigma: float = 0.1    # [design] initial std of the logs (E[alpha] = 1/8, E[beta] = 1 at start)
    # [design] true: the expected discrete cell's weights (alpha over the 7 real ops sums to 1, `none`
    # is 0; beta over a node's edges sums to 2), in the supernet and in the bound; false: raw samples
    normalize: bool = True
    discretize: str = "quantile"  # [design] quantile (1 - eta lower quantile) | mean | median
    decay_to: str = "init"     # [design] arch_wd pulls the parameters to the initial distribution | zero
    learn_sigma: bool = True   # [paper] the covariances are learned; false (with a tiny init_sigma): point
    # weights, the ablation "no confidence learning"

    def __post_init__(self) -> None:
        check_one_of("cov", self.cov, ("full", "diag"))
        check_one_of("decay_to", self.decay_to, ("init", "zero"))
        check_one_of("discretize", self.discretize, ("quantile", "mean", "median"))
        check(self.init_sigma > 0, f"init_sigma must be > 0, got {self.init_sigma}")


@dataclass(frozen=True)
class ConstraintConfig:
    """Pr(L_F <= L_bar) >= eta by an augmented Lagrangian (method.md section 4)."""

    eta: float = 0.9             # [paper] confidence: Pr(L_F <= L_bar) >= eta
    lbar_mode: str = "reference"  # [design] reference | initial | absolute
    # reference: ln L_bar = ln L_ref - ln k, L_ref the bound of the reference architecture (the uniform
    # start, ArchDistribution.reference_weights) under the *current* per-op constants, re-derived at
    # every refresh (BN catch-up, power-iteration lag and weight drift cancel); initial: ln L_bar =
    # ln L_0 - ln k with ln L_0 = mu_F + Phi^-1(eta) sigma_F measured once, when the architecture updates
    # start (never met in any measured run, see docs/method.md); absolute: L_bar itself.
    lbar: float = 2.0            # [design] k (reference, initial) or L_bar (absolute)
    rho: float = 1.0             # [design] penalty weight of (rho/2) max(0, g)^2 and dual step size
    nu0: float = 0.0             # [design] initial multiplier (updated with g at each epoch's end)

    def __post_init__(self) -> None:
        check(0 < self.eta < 1, f"eta must be in (0, 1), got {self.eta}")
        check_one_of("lbar_mode", self.lbar_mode, ("reference", "initial", "absolute"))
        check(self.lbar > 0, f"lbar must be > 0 (a factor k or a bound L_bar), got {self.lbar}")
        check(self.rho >= 0 and self.nu0 >= 0, "constraint needs rho >= 0 and nu0 >= 0")


@dataclass(frozen=True)
class BoundConfig:
    # [design] delta (second-order delta method in log space, with correlations) | analytic
    # (Fenton-Wilkinson with correlations, the paper's approximation) | mc (Monte-Carlo) | independent.
    # Default delta: measured against 16k-sample Monte-Carlo on the default supernet, FW and delta agree
    # at the initial sigma (0.1), but FW's mu_F drifts once the log-weights' std reaches ~0.6 (-0.45 at
    # sigma 0.3 on the default supernet, -17 at 1.0 on an 8-cell C=4 one), which would let the search
    # "meet" the constraint by inflating sigma; delta stayed within 0.01 and 0.7 there. See README.
    bound_method: str = "delta"
    # [design] how BatchNorm enters the per-op constants: none (every BN counts 1: the convolutions'
    # spectral norms, pools and skips only) | eval (eval-mode factor |gamma| / sqrt(running_var + eps)).
    # none by default: with eval the constants are set by BN (sep_conv ~27 vs skip 1), not learned, and
    # any active constraint removes convolutions first (docs/method.md, "Measured choices").
    bn: str = "none"
    recalibrate_batches: int = 10     # [design] bn=eval: BN statistics recomputed on this many weight-half
    # batches (train mode, cumulative average) before every measurement that sets or reports the bound
    mc_samples: int = 256             # [design] samples of the mc estimate
    # [design] steps between per-op constant refreshes (no grad; one power iteration each, on persistent vectors)
    lipschitz_refresh_every: int = 10
    measure_power_iters: int = 20     # [design] iterations of the refreshes that *measure* the bound: at
    # the start of each search epoch (L_0, hence the relative L_bar) and at each epoch's end (metrics).
    # Power iteration converges from below; 1 iteration after a weight change underestimates ln L_F.

    def __post_init__(self) -> None:
        check_one_of("bound_method", self.bound_method, ("analytic", "mc", "delta", "independent"))
        check_one_of("bn", self.bn, ("none", "eval"))
        check(self.recalibrate_batches >= 0, "recalibrate_batches must be >= 0")
        check(self.mc_samples >= 2 and self.lipschitz_refresh_every >= 1
               and self.measure_power_iters >= 1, "bound needs mc_samples >= 2 and the refresh counts >= 1")


@dataclass(frozen=True)
class OptimConfig:
    w_lr: float = 0.025       # [DARTS] SGD on the supernet weights, cosine schedule per step ...
    w_lr_min: float = 0.001   # [DARTS] ... down to this
    w_momentum: float = 0.9   # [paper] SGD momentum of the supernet weights
    w_wd: float = 3e-4        # [paper] weight decay of the supernet weights
    grad_clip: float = 5.0    # [DARTS] max global norm of the weight gradients; 0 = off
    arch_lr: float = 6e-4     # [paper] Adam on the distribution (or alpha) parameters
    arch_betas: tuple[float, ...] = (0.5, 0.999)  # [DARTS] Adam betas of the architecture step
    arch_wd: float = 1e-3     # [paper] Adam weight decay of the distribution (or alpha) parameters
    amp: str = "none"         # none | bf16: autocast on the supernet's forward passes (racl.amp)

    def __post_init__(self) -> None:
        check_amp(self.amp)
        check(self.w_lr > 0 and 0 <= self.w_lr_min <= self.w_lr, "need w_lr > 0 and 0 <= w_lr_min <= w_lr")
        check(0 <= self.w_momentum < 1 and self.w_wd >= 0 and self.grad_clip >= 0,
               "need w_momentum in [0, 1), w_wd >= 0 and grad_clip >= 0")
        check(self.arch_lr > 0 and self.arch_wd >= 0, "need arch_lr > 0 and arch_wd >= 0")
        check(len(self.arch_betas) == 2 and all(0 <= b < 1 for b in self.arch_betas),
               f"arch_betas must be two numbers in [0, 1), got {list(self.arch_betas)}")


@dataclass(frozen=True)
class RobustConfig:
    """What the weight step minimises: CE(f(x'), y) + gamma * mean_i ||grad_x CE_i||_2, x' crafted by the
    `attack` section (racl.attacks.AttackSpec, as in racl train) when `adv` is not none."""

    # [paper: the term; design: its weight] weight of the input-gradient norm (double backprop); 0 = off;
    # null: GAMMA_DEFAULT for the racl strategy (the paper's objective), 0 for darts and random
    gamma: float | None = None
    # [design] none (x' = x) | fgsm_rs (FGSM, random start) | pgd (PGD-attack.steps); x' is crafted with the
    # supernet in train mode, as in Madry's training
    adv: str = "none"
    # [design] fraction of the batch the input-gradient norm is computed on (1 = the paper's term on the
    # whole batch). Below 1 the term is the mean over the batch's first ceil(f * B) examples (the batches
    # are shuffled), from a second forward pass of those alone (BN: their batch statistics, running
    # statistics untouched): fewer FLOPs, more operations; benchmarks/gradnorm_variants.py measures its effect.
    gradnorm_subset: float = 1.0

    def __post_init__(self) -> None:
        check_one_of("adv", self.adv, ("none", *TRAINING_ATTACKS))
        check(0 < self.gradnorm_subset <= 1, f"gradnorm_subset must be in (0, 1], got {self.gradnorm_subset}")
        check(self.gamma is None or self.gamma >= 0, f"gamma must be >= 0 or null, got {self.gamma}")


# [design] the search's x' (robust.adv = pgd): PGD-4 at 8/255. The step is the one default rule,
# eps / 4, and 4 is the fewest steps of eps / 4 that can reach the eps ball's boundary from x.
SEARCH_ATTACK = AttackSpec(steps=4)

@dataclass(frozen=True)
class RandomConfig:
    """The random strategy's own settings."""

    candidates: int = 20         # [design] genotypes compared at each epoch's end ...
    candidate_images: int = 500  # ... on this many images of the distribution half

    def __post_init__(self) -> None:
        check(self.candidates >= 1 and self.candidate_images >= 1,
               "need random.candidates >= 1 and random.candidate_images >= 1")


@dataclass(frozen=True)
class AdvRushConfig:
    """The advrush strategy's own settings (nutellamok/advrush; docs/rivals.md says where each comes from)."""

    a_gamma: float = 0.01     # [AdvRush] weight of the regulariser in the architecture loss (--a_gamma)
    cure_lambda: float = 4.0  # [AdvRush] loss_cure's lambda_ in the architecture step (architect.py)
    a_warmup_epochs: int = 0  # [AdvRush README] epochs from the search's start without the regulariser
    h_schedule: tuple[float, ...] = (0.0, 0.3, 0.6, 0.9, 1.2, 1.5)  # [AdvRush] step h by epoch, then the last
    quirk_eval_after_reg: bool = False  # [design] true: the supernet stays in eval mode after the regulariser
    quirk_find_z_grad: bool = False     # [design] true: also the gradient the direction pass leaves on alpha

    def __post_init__(self) -> None:
        check(self.a_gamma >= 0 and self.cure_lambda >= 0 and self.a_warmup_epochs >= 0,
              "need advrush.a_gamma >= 0, advrush.cure_lambda >= 0 and advrush.a_warmup_epochs >= 0")
        check(len(self.h_schedule) >= 1 and all(h >= 0 for h in self.h_schedule),
              f"advrush.h_schedule must be a non-empty list of steps >= 0, got {list(self.h_schedule)}")


@dataclass(frozen=True)
class GdasConfig:
    """The gdas strategy's own settings (D-X-Y/AutoDL-Projects; docs/rivals.md)."""

    tau_max: float = 10.0     # [GDAS] Gumbel-softmax temperature at the first architecture epoch ...
    tau_min: float = 0.1      # [GDAS] ... annealed linearly to this at the last
    cell_rule: str = "pairs"  # [GDAS] pairs: top-2 (input, op) pairs per node (GDAS's code) | edges (DARTS's)

    def __post_init__(self) -> None:
        check(0 < self.tau_min <= self.tau_max, f"need 0 < gdas.tau_min <= gdas.tau_max, got {self.tau_min}, "
              f"{self.tau_max}")
        check_one_of("gdas.cell_rule", self.cell_rule, ("pairs", "edges"))


@dataclass(frozen=True)
class PcDartsConfig:
    """The pcdarts strategy's own settings (yuhuixu1993/PC-DARTS)."""

    k: int = 4  # [PC-DARTS] 1/k of each edge's channels go through the mixed op (4 on CIFAR)

    def __post_init__(self) -> None:
        check(self.k >= 1, f"pcdarts.k must be >= 1, got {self.k}")


GAMMA_DEFAULT = 0.1  # [design] robust.gamma of the racl strategy when not set (see docs/method.md)


@dataclass(frozen=True)
class SearchConfig:
    space: str = "darts"         # the search space (racl.search_space.registry)
    strategy: str = "racl"       # racl | darts | random | pcdarts | advrush | gdas (same data and budget)
    seed: int = 0                # seed of everything random (init, halves, order, samples, attacks)
    epochs: int = 50             # [paper] search epochs, warm-up included
    warmup_epochs: int = 15      # [design] weight steps only (PC-DARTS's 15 of 50)
    batch_size: int = 128        # [paper] images per step in each half (per process under torchrun)
    augment: bool = True         # [DARTS] random crop (crop_padding) + flip on both halves
    crop_padding: int = 4        # [DARTS] pixels of padding before the random crop
    eval_images: int = 1000      # held-out val images for the per-epoch val_acc; 0 = skip
    eval_batch_size: int = 256   # batch size of those accuracy measurements
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)
    constraint: ConstraintConfig = field(default_factory=ConstraintConfig)
    bound: BoundConfig = field(default_factory=BoundConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    attack: AttackSpec = SEARCH_ATTACK  # x' of the weight step when robust.adv is not none (frozen: shared)
    random: RandomConfig = field(default_factory=RandomConfig)
    advrush: AdvRushConfig = field(default_factory=AdvRushConfig)
    gdas: GdasConfig = field(default_factory=GdasConfig)
    pcdarts: PcDartsConfig = field(default_factory=PcDartsConfig)

    def __post_init__(self) -> None:
        check_one_of("strategy", self.strategy, STRATEGIES)
        check_one_of("space", self.space, tuple(spaces.REGISTRY))
        check(not (self.space == "darts" and self.supernet.keep_none),
              "a DARTS genotype never keeps `none` (supernet.keep_none must be null or false)")
        from racl.search.registry import strategy_class  # here: the strategies import this module
        supported = strategy_class(self.strategy).spaces
        check(supported is None or self.space in supported,
              f"the {self.strategy} strategy does not support the {self.space} space "
              f"(it supports: {', '.join(supported or ())})")
        check(self.epochs >= 1 and 0 <= self.warmup_epochs, "need epochs >= 1 and warmup_epochs >= 0")
        check(self.batch_size >= 2, f"batch_size must be >= 2 (BatchNorm), got {self.batch_size}")
        check(self.eval_images >= 0 and self.eval_batch_size >= 1 and self.crop_padding >= 0,
               "need eval_images >= 0, eval_batch_size >= 1 and crop_padding >= 0")

    def to_dict(self) -> dict[str, Any]:
        return configs.to_dict(self)

    def supernet_size(self) -> dict[str, Any]:
        """channels, layers, steps of the search network (the config's, else the space's defaults), and
        keep_none when set (null: the space's rule, not passed)."""
        defaults = spaces.get_space(self.space).supernet_defaults
        size = {k: defaults[k] if getattr(self.supernet, k) is None else getattr(self.supernet, k)
                for k in ("channels", "layers", "steps")}
        return size if self.supernet.keep_none is None else {**size, "keep_none": self.supernet.keep_none}

    @property
    def gamma(self) -> float:
        """The weight of the input-gradient-norm term this search uses (robust.gamma resolved)."""
        if self.robust.gamma is not None:
            return self.robust.gamma
        return GAMMA_DEFAULT if self.strategy == "racl" else 0.0


# ---------------------------------------------------------------- presets
PRESETS: dict[str, dict[str, Any]] = {
    # tests: seconds on one CPU core (16x16 synthetic images, a few steps per epoch)
    "tiny": {"epochs": 2, "warmup_epochs": 1, "batch_size": 8, "augment": False, "eval_images": 16,
             "eval_batch_size": 16, "random": {"candidates": 3, "candidate_images": 16},
             "supernet": {"channels": 4, "layers": 3},
             "bound": {"mc_samples": 16, "lipschitz_refresh_every": 2, "measure_power_iters": 2}},
    # CPU: a CIFAR-10 subset, e.g. `--dataset imagefolder --data-dir cifar10-train-jpg.zip --limit 200
    # --image-size 16` (1600 train images: 25 steps of 32 per epoch). Measured on the shared 2-core
    # machine, one thread: 25 s per warm-up epoch and 45 s per search epoch (racl) when it was quiet.
    "quick": {"epochs": 4, "warmup_epochs": 1, "batch_size": 32, "eval_images": 500,
              "random": {"candidates": 10, "candidate_images": 256},
              "supernet": {"channels": 8, "layers": 5}, "bound": {"mc_samples": 64},
              # [design] 75 architecture steps instead of the paper's ~10k: a larger Adam step (measured:
              # at 6e-4 the distributions move ~0.02 nats and Pr(L_F <= L_bar) stays 0)
              "optim": {"arch_lr": 0.01}},
    # the paper's search: CIFAR-10, 8 cells, C = 16, batch 128, 50 epochs, eta 0.9 (= the defaults)
    "paper": {},
}


# `racl search` flags: each `--NAME VALUE` is `--set KEY=VALUE` (racl.config.Flag)
FLAGS = {
    "space": Flag("space", "search space (default: darts)", choices=tuple(spaces.REGISTRY)),
    "strategy": Flag("strategy", "search strategy (default: racl)", choices=STRATEGIES),
    "epochs": Flag("epochs", "search epochs (default 50)"),
    "batch_size": Flag("batch_size", "batch size of both halves (default 128)"),
    "lr": Flag("optim.w_lr", "initial SGD learning rate of the supernet weights, optim.w_lr (default 0.025)"),
    "seed": Flag("seed", "seed of everything random in the search (default 0)"),
    "amp": Flag("optim.amp", AMP_HELP),
}
SCHEMA = configs.Schema(SearchConfig, PRESETS, "search", "search config", FLAGS)
# the module's API is the schema's (racl.config.Schema)
config_from_dict, config_to_dict, apply_overrides = SCHEMA.from_dict, SCHEMA.to_dict, SCHEMA.override
get_preset, load_search_config, save_search_config = SCHEMA.preset, SCHEMA.load, SCHEMA.save
