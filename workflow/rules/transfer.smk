# Phase rules of 'transfer' are added here by its issue; nothing is defined yet.
