"""Run alplug's conformance check on the model, as every model plugin's own suite should."""
from alplug.testing import check_model

from alplug_example_model import SMALL_CNN


def test_small_cnn_follows_the_model_contract():
    check_model(SMALL_CNN)
