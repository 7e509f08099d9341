"""A worked example of a circuit file: angle encoding, a ring of trainable CRZ gates, and
two-body observables.

Train it with ``--set train.circuit=circuits/ring.py:ring`` (any ``train.n_qubits >= 2``,
``train.q_depth >= 1``). A circuit file defines two functions:

* ``weight_shape(n_qubits, q_depth)``: the shape of the trainable weights, drawn at
  ``train.q_delta * N(0, 1)``;
* the circuit, here ``ring(inputs, weights)``, written for one sample and one parameter set,
  as the body of a PennyLane QNode: ``inputs`` is the (n_qubits,) vector of angles
  ``tanh(pre_net(x)) * pi / 2``, ``weights`` has ``weight_shape``. It applies PennyLane
  operations on wires ``0 … n_qubits - 1`` and returns ``qml.expval`` of Pauli words (or
  nothing: ``<Z_i>`` on every wire); ``post_net`` maps however many outputs to the classes.

The pipeline records it once and runs it in its own batched simulator, many samples and many
stacked heads at once; the file's text is kept in ``model.pt``.
"""

import pennylane as qml


def weight_shape(n_qubits, q_depth):
    """Per layer: an RX angle per wire and a CRZ angle per ring edge."""
    return (q_depth, 2, n_qubits)


def ring(inputs, weights):
    """One sample: ``inputs`` (n_qubits,), ``weights`` (q_depth, 2, n_qubits)."""
    q_depth, _, n_qubits = weights.shape
    for wire in range(n_qubits):
        qml.RY(inputs[wire], wires=wire)
    for layer in range(q_depth):
        for wire in range(n_qubits):
            qml.RX(weights[layer, 0, wire], wires=wire)
        for wire in range(n_qubits):
            qml.CRZ(weights[layer, 1, wire], wires=[wire, (wire + 1) % n_qubits])
    # <Z_i Z_{i+1}> around the ring
    return [
        qml.expval(qml.PauliZ(wire) @ qml.PauliZ((wire + 1) % n_qubits)) for wire in range(n_qubits)
    ]
