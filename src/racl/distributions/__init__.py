"""Log-normal architecture distributions and the log-normal algebra used by the Lipschitz bound."""
from racl.distributions.arch import ArchDistribution
from racl.distributions.lognormal import LogGaussian, delta_logsumexp, fw_logsumexp, log_normalize

__all__ = ["ArchDistribution", "LogGaussian", "delta_logsumexp", "fw_logsumexp", "log_normalize"]
