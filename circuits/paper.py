"""The paper's circuit (Mari et al. 2020) written as a circuit file.

Train it with ``--set train.circuit=circuits/paper.py:paper``: the same circuit as the
built-in ``paper`` (a Hadamard on every wire, ``RY(inputs[i])``, then ``q_depth`` layers of
CNOTs on (0,1), (2,3), … and (1,2), (3,4), … followed by ``RY(weights[l, i])``), with the same
weight shape, so it starts from the same initial weights and ends with the same metrics.
"""

import pennylane as qml


def weight_shape(n_qubits, q_depth):
    """One RY angle per layer and wire."""
    return (q_depth, n_qubits)


def paper(inputs, weights):
    """One sample: ``inputs`` (n_qubits,), ``weights`` (q_depth, n_qubits); <Z_i> on every wire."""
    q_depth, n_qubits = weights.shape
    for wire in range(n_qubits):
        qml.Hadamard(wires=wire)
    for wire in range(n_qubits):
        qml.RY(inputs[wire], wires=wire)
    for layer in range(q_depth):
        for first in (0, 1):
            for control in range(first, n_qubits - 1, 2):
                qml.CNOT(wires=[control, control + 1])
        for wire in range(n_qubits):
            qml.RY(weights[layer, wire], wires=wire)
    return [qml.expval(qml.PauliZ(wire)) for wire in range(n_qubits)]
