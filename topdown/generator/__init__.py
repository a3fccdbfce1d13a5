"""A learned image prior for one classifier, trained on its own data: a generator from the classifier's code to
an image (DGN-AM, PPGN), a denoising autoencoder on the codes, and the samplers that visualize through them.

``python -m topdown.generator --ckpt <checkpoint> --out <file>`` trains one (resumably);
``evaluate.py visualize --generators '{topdown: <file>}'`` uses it (methods ``dgn_am`` and ``ppgn``).
"""

from .model import CodeDAE, CodeGenerator, codes
from .prior import PRIORS, Chains, LearnedPrior, dgn_am, load_prior, ppgn
from .train import GeneratorConfig, GeneratorError, read_generator_file, train_generator

__all__ = [
    "PRIORS",
    "Chains",
    "CodeDAE",
    "CodeGenerator",
    "GeneratorConfig",
    "GeneratorError",
    "LearnedPrior",
    "codes",
    "dgn_am",
    "load_prior",
    "ppgn",
    "read_generator_file",
    "train_generator",
]
