"""Every fsw figure, in one style (`style`): false-positive statistics, marked models, Figure 1."""
