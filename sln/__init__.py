"""Sparse Liquid Networks: liquid neurons with k-winners-take-all firing."""
from .config import SLNConfig, get_config, list_models, register
from .model import SLN, create_model

__all__ = ["SLN", "SLNConfig", "create_model", "get_config", "list_models", "register"]
__version__ = "0.1.0"
