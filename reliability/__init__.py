"""edgernn.reliability: the hostile-input harness (a tool beside the library, not shipped to devices).

Faults injected into model files, API fuzzing (hypothesis), soak and thread races, checked
against a float64 reference of the cells; ``edgernn reliability`` writes RELIABILITY.md.
"""
