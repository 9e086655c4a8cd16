//! Sans-IO BGP-4 core.
