"""Statistics of ownership verification: null distributions and tests (`tests`), the decisions a key
ships with (`decision`), every rule beside every record (`rules`), tables of detection rates and
ROC (`tables`), synthetic records (`simulate`)."""
