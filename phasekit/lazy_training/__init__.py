"""Lazy versus feature-learning training of a two-layer network on a teacher.

``networks`` holds the teacher and the student, ``loss`` the exact population
loss with its gradient and the tangent (linearised) model, ``pair_kernels``
the Gaussian pair kernels they need, ``training`` gradient flow and SGD.
"""

from .loss import TangentModel, TwoLayer
from .networks import Student, Teacher, init_student, make_teacher
from .training import Trajectory, horizon, run_two_layer, train_gradient_flow, train_sgd

__all__ = ["TangentModel", "TwoLayer", "Student", "Teacher", "init_student", "make_teacher", "Trajectory",
           "horizon", "run_two_layer", "train_gradient_flow", "train_sgd"]
