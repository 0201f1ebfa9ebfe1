"""The built-in detectors, and `build_detectors()` which makes the enabled ones from config."""

from __future__ import annotations

from bastion.guard.config import GuardrailsConfig
from bastion.guard.detector import Detector


def build_detectors(config: GuardrailsConfig) -> list[Detector]:
    """The enabled built-in detectors, in report order."""
    from bastion.guard.detectors.arguments import ArgumentsDetector
    from bastion.guard.detectors.classifier import ClassifierDetector
    from bastion.guard.detectors.injection import InjectionDetector
    from bastion.guard.detectors.pii import PiiDetector
    from bastion.guard.detectors.poisoning import PoisoningDetector
    from bastion.guard.detectors.schema import SchemaDetector
    from bastion.guard.detectors.secrets import SecretsDetector

    detectors: list[Detector] = []
    if config.secrets.enabled:
        detectors.append(SecretsDetector(config.secrets))
    if config.pii.enabled:
        detectors.append(PiiDetector(config.pii))
    if config.injection.enabled:
        detectors.append(InjectionDetector(config.injection))
    if config.poisoning.enabled:
        detectors.append(PoisoningDetector(config.poisoning))
    if config.arguments.enabled:
        detectors.append(ArgumentsDetector(config.arguments))
    if config.validation.enabled:
        detectors.append(SchemaDetector(config.validation))
    if config.classifier.enabled:
        detectors.append(ClassifierDetector(config.classifier))
    return detectors
